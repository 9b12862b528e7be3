//! `crds/` is generated: this fails when the committed file no longer matches the code.

#[test]
fn the_committed_crd_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/loadtests.stampede.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = stampede_api::crd::crd_yaml();
    assert!(
        committed == generated,
        "{path} is stale: run scripts/generate-crds.sh and commit the result"
    );
}

#[test]
fn the_crd_command_prints_the_committed_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stampede-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        stampede_api::crd::crd_yaml()
    );
}
