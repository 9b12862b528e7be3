//! `stampede-operator`'s flag checks (`local`, and `run`'s durations): made before any runner
//! starts or any cluster is contacted, so a typo costs nothing. The runner binary given does
//! not exist: a check that came after the runners started would fail on it instead, with
//! another message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_test(dir: &Path) -> PathBuf {
    let path = dir.join("t.yaml");
    std::fs::write(
        &path,
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: { name: flags }\nspec:\n  connections: 2\n  rate: 5\n  duration: 20s\n  scenario:\n    connection: { http: { url: \"http://127.0.0.1:9\" } }\n    steps:\n      - { name: home, request: { path: / } }\n",
    )
    .unwrap();
    path
}

fn local(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stampede-operator"))
        .arg("local")
        .arg("-f")
        .arg(write_test(dir))
        .arg("--runner-bin")
        .arg(dir.join("no-such-stampede"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn local_refuses_threads_0_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let o = local(dir.path(), &["--threads".as_ref(), "0".as_ref()]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--threads: expected at least 1, found 0"),
        "{stderr}"
    );
}

#[test]
fn local_refuses_an_out_path_in_a_missing_directory_before_any_runner_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-such-dir/summary.json");
    let o = local(dir.path(), &["--out".as_ref(), out.as_os_str()]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--out {}: ", out.display()))
            && stderr.contains("No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn local_refuses_an_out_path_that_is_a_directory_and_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let o = local(dir.path(), &["--out".as_ref(), dir.path().as_os_str()]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--out {}: ", dir.path().display()))
            && stderr.contains("Is a directory"),
        "{stderr}"
    );
    // A writable --out passes the check without being created by it: the run then fails
    // on the missing runner binary, and no empty summary is left.
    let out = dir.path().join("summary.json");
    let o = local(dir.path(), &["--out".as_ref(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("--out"), "{}", text(&o.stderr));
    assert!(!out.exists(), "{} was left behind", out.display());
}

/// `stampede-operator run`'s duration flags take the units of LoadTest files: a `1d` typo is
/// refused, not a day-long lease. Both checks come before any cluster is contacted.
#[test]
fn run_takes_lease_flags_in_the_units_of_loadtest_files() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_stampede-operator"))
            .arg("run")
            .args(args)
            .output()
            .unwrap();
        (o.status.code(), text(&o.stderr))
    };
    let (code, stderr) = run(&["--lease-duration", "1d"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("'--lease-duration <DURATION>'") && stderr.contains("write hours"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--lease-duration", "2s", "--lease-retry", "3s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--lease-retry: expected less than --lease-duration (2s), found 3s"),
        "{stderr}"
    );
}
