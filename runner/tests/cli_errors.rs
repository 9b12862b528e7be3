//! The `stampede` command's refusals and wording, as a new user meets them: flags checked
//! before any load, a summary without `series`, ramps and counts in `validate`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stampede() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stampede"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A valid open-model test of `duration` against a port nothing listens on (connects are
/// refused at once, so the test lasts `duration` and sends nothing anywhere).
fn write_test(dir: &Path, duration: &str) -> PathBuf {
    let path = dir.join("t.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: cli }}\nspec:\n  connections: 1\n  rate: 5\n  duration: {duration}\n  scenario:\n    connection: {{ http: {{ url: \"http://127.0.0.1:9\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }} }}\n  thresholds: [\"rate >= 0\"]\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `cmd` and says how long it took.
fn timed(cmd: &mut Command) -> (Output, Duration) {
    let t0 = Instant::now();
    let o = cmd.output().unwrap();
    (o, t0.elapsed())
}

#[test]
fn run_refuses_an_out_path_in_a_missing_directory_before_the_test_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "20s");
    let out = dir.path().join("no-such-dir/summary.json");
    let (o, took) = timed(stampede().arg("run").arg(&file).arg("--out").arg(&out));
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("--out {}: ", out.display()))
            && stderr.contains("No such file or directory"),
        "{stderr}"
    );
    assert!(
        !text(&o.stdout).contains("verdict"),
        "the test ran: {}",
        text(&o.stdout)
    );
}

#[test]
fn run_refuses_an_out_path_that_is_a_directory_before_the_test_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "20s");
    let (o, took) = timed(
        stampede()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(dir.path()),
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("--out {}: ", dir.path().display()))
            && stderr.contains("Is a directory"),
        "{stderr}"
    );
}

#[test]
fn checking_out_leaves_no_empty_file_and_keeps_an_existing_one_when_the_test_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n").unwrap();
    let new = dir.path().join("new.json");
    let o = stampede()
        .arg("run")
        .arg(&bad)
        .arg("--out")
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        !new.exists(),
        "the --out check left {} behind",
        new.display()
    );
    let old = dir.path().join("old.json");
    std::fs::write(&old, "{\"previous\": true}").unwrap();
    let o = stampede()
        .arg("run")
        .arg(&bad)
        .arg("--out")
        .arg(&old)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&old).unwrap(),
        "{\"previous\": true}"
    );
}

#[test]
fn run_with_a_writable_out_writes_the_summary_there() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "1s");
    let out = dir.path().join("summary.json");
    let o = stampede()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(s["schema"], "stampede.dev/summary/v1");
}

#[test]
fn threads_0_is_refused_by_run_and_agent_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "20s");
    let flag = stampede()
        .arg("run")
        .arg(&file)
        .args(["--quiet", "--threads", "0"])
        .output()
        .unwrap();
    let mut env = stampede();
    env.arg("run")
        .arg(&file)
        .arg("--quiet")
        .env("STAMPEDE_THREADS", "0");
    let env = env.output().unwrap();
    let agent = stampede()
        .args([
            "agent",
            "--coordinator",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "--loadtest",
            "default/cli",
            "--index",
            "0",
            "--threads",
            "0",
        ])
        .output()
        .unwrap();
    for (what, o) in [
        ("run --threads", flag),
        ("run STAMPEDE_THREADS", env),
        ("agent", agent),
    ] {
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("--threads: expected at least 1, found 0"),
            "{what}: {stderr}"
        );
    }
}

struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `stampede target ARGS` and returns it with what it printed up to its UDP line.
fn target(args: &[&str]) -> (Target, String) {
    let mut child = stampede()
        .arg("target")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = Target(child);
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner += &line;
        banner += "\n";
        if line.contains("UDP echo") {
            return (child, banner);
        }
    }
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err);
    panic!(
        "target {args:?} exited: {:?}\n{banner}{err}",
        child.0.wait()
    );
}

#[test]
fn target_takes_a_bare_port_for_listen_on_127_0_0_1() {
    let (_t, banner) = target(&["--listen", "0"]);
    assert!(
        banner.starts_with("stampede target listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(!banner.contains("http://127.0.0.1:0\n"), "{banner}");
}

#[test]
fn target_takes_bare_ports_for_the_other_listen_flags_on_the_listen_ip() {
    let (_t, banner) = target(&[
        "--listen",
        "127.0.0.2:0",
        "--tls-listen",
        "0",
        "--tcp-listen",
        "0",
        "--udp-listen",
        "0",
    ]);
    for line in [
        "TLS (self-signed): https://127.0.0.2:",
        "TCP echo: 127.0.0.2:",
        "UDP echo: 127.0.0.2:",
    ] {
        assert!(banner.contains(line), "no {line:?} in:\n{banner}");
    }
}

#[test]
fn target_refuses_a_listen_value_that_is_neither_an_address_nor_a_port() {
    let o = stampede()
        .args(["target", "--listen", "localhost"])
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen") && stderr.contains("or a port such as 8080"),
        "{stderr}"
    );
    let o = stampede()
        .args(["target", "--listen", "127.0.0.1:0", "--tcp-listen", "x"])
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--tcp-listen: expected an address such as 127.0.0.1:7000, a port, or off; found \"x\""
        ),
        "{stderr}"
    );
}

#[test]
fn validate_reports_the_peak_users_and_rate_of_a_ramp() {
    let ramp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ramp-up.yaml");
    let o = stampede().arg("validate").arg(&ramp).output().unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        stdout.contains("valid — up to 200 users, up to 2000/s open model, 1 step, 2 thresholds"),
        "{stdout}"
    );
}

#[test]
fn validate_says_1_user_1_step_and_1_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "1s");
    let o = stampede().arg("validate").arg(&file).output().unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        stdout.contains("valid — 1 user, 5/s open model, 1 step, 1 threshold\n"),
        "{stdout}"
    );
}

#[test]
fn validate_says_1_problem_for_a_file_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(dir.path(), "1s");
    let text_of = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rate >= 0", "p99(nope) < 1s");
    std::fs::write(&file, text_of).unwrap();
    let o = stampede().arg("validate").arg(&file).output().unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(": 1 problem:\n"), "{stderr}");
}

#[test]
fn report_reads_a_summary_without_series_and_its_charts_say_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let summary = stampede_runner::Summary {
        schema: stampede_runner::results::SUMMARY_SCHEMA.into(),
        name: "trimmed".into(),
        model: "closed".into(),
        ..Default::default()
    };
    let mut v: serde_json::Value = serde_json::from_slice(&summary.to_json_pretty()).unwrap();
    assert!(v.as_object_mut().unwrap().remove("series").is_some());
    let file = dir.path().join("summary.json");
    std::fs::write(&file, v.to_string()).unwrap();

    let o = stampede().arg("report").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("verdict: FAILED"),
        "{}",
        text(&o.stdout)
    );

    let html = dir.path().join("report.html");
    let o = stampede()
        .arg("report")
        .arg(&file)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("no data: the summary has no per-second series"),
        "{page}"
    );
}

#[test]
fn an_agent_without_a_coordinator_says_so_and_stops_after_orphan_after() {
    // Nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (o, took) = timed(
        stampede()
            .args(["agent", "--coordinator", &url, "--token", "x"])
            .args(["--loadtest", "t", "--index", "0", "--orphan-after", "6s"])
            .env_remove("STAMPEDE_ORPHAN_AFTER"),
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the coordinator at {url} for "))
            && stderr.contains("retrying"),
        "it says so while it retries: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the coordinator at {url} has been unreachable for"
        )),
        "{stderr}"
    );
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(30),
        "stopped after {took:?}"
    );
}
