//! How `stampede run` ends: requests in flight at the end get their own outcome, Ctrl-C keeps
//! rates over the load window, and a second Ctrl-C stops at once with what was in flight
//! counted, so a run cut short never passes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stampede_runner::target::Target;

fn write(dir: &Path, body: &str) -> PathBuf {
    let file = dir.join("t.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{body}"),
    )
    .unwrap();
    file
}

/// `stampede run FILE --out OUT`, its stdout and stderr lines as they come.
fn start(file: &Path, out: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                println!("stampede: {line}");
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line with {needle:?} within {within:?}"));
        if line.contains(needle) {
            return;
        }
    }
}

fn interrupt(child: &Child) {
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits (bounded) for the exit code.
fn exit_code(mut child: Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("stampede run did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out).expect("the summary was written")).unwrap()
}

#[test]
fn a_request_still_out_at_the_end_waits_for_its_own_timeout_beyond_the_usual_drain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(Target::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 16 s of delay outlasts the 15 s drain; the request's own 20 s timeout does not.
    let file = write(
        dir.path(),
        &format!(
            "  connections: 1\n  duration: 1s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: slow, request: {{ path: /delay/16000, timeout: 20s }} }}\n  thresholds: [\"errors < 1%\"]\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let (child, _lines) = start(&file, &out);
    assert_eq!(exit_code(child, Duration::from_secs(40)), 0);
    let s = summary(&out);
    println!("{}", s["steps"][0]["outcomes"]);
    assert_eq!(s["steps"][0]["outcomes"]["ok"].as_u64(), Some(1));
    assert_eq!(s["totals"]["requests"].as_u64(), Some(1));
    target.shutdown();
}

#[test]
fn ctrl_c_measures_rates_over_the_load_and_a_second_one_counts_the_cut_off_requests() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(Target::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two users each wait on a 30 s reply while a third loops on quick requests.
    let file = write(
        dir.path(),
        &format!(
            "  connections: 2\n  duration: 60s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: slow, request: {{ path: /delay/30000, timeout: 40s }} }}\n  thresholds: [\"errors < 1%\"]\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let (child, lines) = start(&file, &out);
    wait_for(&lines, "  2s ", Duration::from_secs(20));
    interrupt(&child);
    wait_for(
        &lines,
        "interrupted: stopping users",
        Duration::from_secs(5),
    );
    // The drain prints a line a second while the requests are out.
    wait_for(&lines, "  4s ", Duration::from_secs(5));
    interrupt(&child);
    wait_for(&lines, "stopping at once", Duration::from_secs(5));
    assert_eq!(
        exit_code(child, Duration::from_secs(10)),
        99,
        "requests that never finished cannot pass"
    );
    let s = summary(&out);
    let slow = &s["steps"][0];
    println!("{} over {} s", slow["outcomes"], s["durationSeconds"]);
    assert_eq!(slow["outcomes"]["interrupted"].as_u64(), Some(2), "{slow}");
    assert_eq!(s["totals"]["errorRatio"].as_f64(), Some(1.0));
    let window = s["durationSeconds"].as_f64().unwrap();
    assert!(
        (1.5..3.5).contains(&window),
        "the load window ends at the first Ctrl-C, not after the drain: {window} s"
    );
    target.shutdown();
}
