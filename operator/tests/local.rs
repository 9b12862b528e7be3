//! The local backend end to end: `stampede-operator local` with three `stampede agent`
//! processes against the built-in target on 127.0.0.1. The target counts what it served, so
//! rates are checked where the load lands, not only where it is claimed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stampede_runner::target::Target;

struct Operator {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Operator {
    fn start(file: &std::path::Path, runners: usize, out: &std::path::Path) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stampede-operator"))
            .args([
                "local",
                "--runners",
                &runners.to_string(),
                "--threads",
                "1",
                "-f",
            ])
            .arg(file)
            .arg("--out")
            .arg(out)
            .arg("--runner-bin")
            .arg(common::runner_bin())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the operator starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("operator: {line}");
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Operator {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line containing `needle`.
    fn wait_for(&mut self, needle: &str, within: Duration) -> (Instant, String) {
        let deadline = Instant::now() + within;
        if let Some(hit) = self.seen.iter().find(|(_, l)| l.contains(needle)) {
            return hit.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no line with {needle:?} within {within:?}; saw {:?}",
                    self.seen
                )
            });
            self.seen.push((at, line.clone()));
            if line.contains(needle) {
                return (at, line);
            }
        }
    }

    fn finish(mut self) -> (Vec<(Instant, String)>, i32) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.try_iter());
        (self.seen, status.code().unwrap_or(-1))
    }
}

fn write_test(
    dir: &std::path::Path,
    target: std::net::SocketAddr,
    rate: u32,
    secs: u32,
) -> PathBuf {
    let file = dir.join("flash.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: flash }}\nspec:\n  connections: 30\n  rate: {rate}\n  duration: {secs}s\n  scenario:\n    connection: {{ http: {{ url: \"http://{target}\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }} }}\n  thresholds: [\"errors < 1%\"]\n"
        ),
    )
    .unwrap();
    file
}

/// The target's served-request count, sampled every 50 ms until `until`.
fn samples(target: &Target, until: Instant) -> Vec<(Instant, u64)> {
    let mut v = Vec::new();
    while Instant::now() < until {
        v.push((Instant::now(), target.stats.requests()));
        std::thread::sleep(Duration::from_millis(50));
    }
    v
}

/// The served rate between the first samples at or after `from` and `to`, over the time
/// actually between those samples.
fn rate_between(s: &[(Instant, u64)], from: Instant, to: Instant) -> f64 {
    let at = |t: Instant| {
        *s.iter()
            .find(|(i, _)| *i >= t)
            .unwrap_or_else(|| s.last().unwrap())
    };
    let ((t1, n1), (t2, n2)) = (at(from), at(to));
    (n2 - n1) as f64 / (t2 - t1).as_secs_f64()
}

#[test]
fn three_runners_hold_the_merged_rate_take_file_edits_live_and_survive_a_lost_runner() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(Target::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), target.addr, 600, 12);
    let out = dir.path().join("summary.json");
    let mut op = Operator::start(&file, 3, &out);

    // Steady state at 600/s across three runners.
    let (first, _) = op.wait_for("  1s ", Duration::from_secs(30));
    let s = samples(&target, first + Duration::from_secs(2));
    let steady = rate_between(&s, first, first + Duration::from_millis(1800));
    println!("steady merged rate at the target: {steady:.1}/s");
    assert!(
        (steady / 600.0 - 1.0).abs() <= 0.03,
        "merged rate {steady:.1}/s, want 600 ± 3%"
    );

    // A saved file is a live patch: every runner has the new revision within a second.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rate: 600", "rate: 900");
    let saved = Instant::now();
    std::fs::write(&file, text).unwrap();
    let (_, pushed) = op.wait_for("changed: revision", Duration::from_secs(3));
    let rev: u64 = pushed
        .rsplit("revision ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (reached_at, reached) = op.wait_for(
        &format!("revision {rev} reached 3/3 runners in"),
        Duration::from_secs(3),
    );
    // From the save to the operator's report that the last runner acknowledged: the file
    // poll, the validation, the push and the acknowledgements, all included.
    let save_to_all = reached_at.duration_since(saved);
    let ms: u64 = reached
        .rsplit("in ")
        .next()
        .unwrap()
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    println!(
        "revision {rev} reached all three runners {} ms after the save ({ms} ms after the push)",
        save_to_all.as_millis()
    );
    assert!(save_to_all < Duration::from_secs(1), "{reached}");

    // Kill one runner: the survivors carry the whole budget, and it comes back.
    let (_, started) = op.wait_for("runner 1 started (pid", Duration::from_secs(1));
    let pid: String = started
        .rsplit("pid ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    std::thread::sleep(Duration::from_millis(1200));
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let s = samples(&target, killed + Duration::from_secs(3));
    let restored = rate_between(
        &s,
        killed + Duration::from_secs(2),
        killed + Duration::from_millis(2950),
    );
    println!("rate 2–3 s after losing a runner: {restored:.1}/s");
    assert!(
        (restored / 900.0 - 1.0).abs() <= 0.05,
        "rate after losing a runner {restored:.1}/s, want 900 ± 5%"
    );
    op.wait_for("runner 1 exited", Duration::from_secs(1));

    // A runner with the wrong token is refused.
    let url = op
        .wait_for("coordinator listening on", Duration::from_secs(1))
        .1;
    let url = url.split_whitespace().nth(3).unwrap().to_string();
    let intruder = Command::new(common::built_runner_bin())
        .args([
            "agent",
            "--coordinator",
            &url,
            "--loadtest",
            "flash",
            "--index",
            "7",
            "--token",
            "not-the-token",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&intruder.stderr);
    assert_eq!(intruder.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("wrong token"),
        "{stderr}"
    );

    let (_, code) = op.finish();
    assert_eq!(code, 0);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let served = target.stats.requests();
    let counted = summary["totals"]["requests"].as_u64().unwrap();
    let dropped = summary["totals"]["dropped"].as_u64().unwrap();
    println!(
        "summary counted {counted} requests and {dropped} dropped iterations, the target served {served}"
    );
    // The replacement runner joined a running test: the part of the plan the survivors ran
    // for it is neither replayed nor counted as dropped (it was 1,300 before that was so).
    assert!(dropped < 90, "{dropped} dropped");
    // A killed runner's last second may be lost with it; everything else is merged once.
    assert!(
        counted <= served && served - counted < 900,
        "counted {counted}, served {served}"
    );
    target.shutdown();
}

#[test]
fn a_suspended_file_starts_nothing_until_suspend_is_cleared() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(Target::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), target.addr, 100, 2);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("  connections: 30\n", "  connections: 4\n  suspend: true\n"),
    )
    .unwrap();
    let out = dir.path().join("summary.json");
    let mut op = Operator::start(&file, 2, &out);
    op.wait_for("the test is suspended", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(target.stats.requests(), 0, "a suspended test sends nothing");
    std::fs::write(
        &file,
        text.replace("  connections: 30\n", "  connections: 4\n"),
    )
    .unwrap();
    op.wait_for("resumed", Duration::from_secs(5));
    let (_, code) = op.finish();
    assert_eq!(code, 0);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let iterations = summary["totals"]["iterations"].as_u64().unwrap();
    // 100/s for 2 s once resumed.
    assert!((190..=210).contains(&iterations), "{iterations}");
    assert_eq!(target.stats.requests(), iterations);
}
