//! The `stampede` command as a user runs it: exit codes, the summary file, the target.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn stampede() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stampede"))
}

struct TargetProcess {
    child: Child,
    url: String,
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_target() -> TargetProcess {
    let mut child = stampede()
        .args(["target", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stampede target starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "target printed {line:?}"
    );
    TargetProcess { child, url }
}

fn write_test(dir: &tempfile::TempDir, url: &str, thresholds: &str) -> std::path::PathBuf {
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: cli }}\nspec:\n  connections: 4\n  rate: 100\n  duration: 1s\n  scenario:\n    connection: {{ http: {{ url: \"{url}\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }}, check: {{ status: 200 }} }}\n  thresholds: [{thresholds}]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn run_exits_0_when_thresholds_hold_and_writes_the_summary() {
    let t = start_target();
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(&dir, &t.url, "\"errors < 1%\", \"rate > 90\"");
    let out = dir.path().join("summary.json");
    let o = stampede()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("achieved") && stdout.contains("verdict: PASSED"),
        "{stdout}"
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(s["schema"], "stampede.dev/summary/v1");
    assert_eq!(s["totals"]["iterations"], 100);
    assert_eq!(s["steps"][0]["name"], "home");
    assert!(
        s["steps"][0]["histograms"]["latency"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );
    assert_eq!(s["passed"], true);
}

#[test]
fn run_exits_99_when_a_threshold_fails() {
    let t = start_target();
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(&dir, &t.url, "\"rate > 1000\"");
    let o = stampede()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(99), "{stdout}");
    assert!(stdout.contains("FAIL rate > 1000"), "{stdout}");
}

#[test]
fn run_and_validate_exit_1_on_a_bad_file_and_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_test(&dir, "http://127.0.0.1:9", "\"p99(nope) < 1s\"");
    for cmd in ["run", "validate"] {
        let o = stampede().arg(cmd).arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(
            stderr.contains("spec.thresholds[0]: no step is named \"nope\""),
            "{cmd}: {stderr}"
        );
    }
    let o = stampede()
        .args(["validate", "/no/such/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /no/such/file.yaml"));
}

#[test]
fn validate_accepts_the_quickstart() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let o = stampede()
        .arg("validate")
        .arg(root.join("examples/quickstart.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid"));
}
