//! Helpers shared by the operator's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// Builds (if stale) and returns the `stampede` runner binary that agents run from.
pub fn runner_bin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "stampede-runner", "--bin", "stampede"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the runner binary builds");
    built_runner_bin()
}

/// The runner binary `runner_bin` built, without building again: a build mid-test can wait
/// on cargo's lock for longer than the test it is part of lasts.
#[allow(
    dead_code,
    reason = "each test binary compiles this module; not all use it"
)]
pub fn built_runner_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stampede-operator")).with_file_name("stampede")
}
