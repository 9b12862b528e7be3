//! Every malformed file in `tests/fixtures/invalid/` is refused before any traffic, with the
//! path of the field at fault; every file in `examples/` is valid.
//! A fixture names what it expects on its first lines: `# expect: PATH` (and optionally
//! `# message: TEXT`, a fragment of the message).

use std::path::{Path, PathBuf};

use stampede_runner::load_file;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn each_malformed_fixture_fails_validation_with_the_expected_field_path() {
    let files = yaml_files(&root().join("tests/fixtures/invalid"));
    assert!(files.len() >= 15, "fixtures present: {}", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let header = |key: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("# {key}: "))
                    .map(str::trim)
                    .map(str::to_string)
            })
        };
        let path =
            header("expect").unwrap_or_else(|| panic!("{}: no `# expect:` line", f.display()));
        let errs = match load_file(&f) {
            Ok(_) => panic!("{} was accepted", f.display()),
            Err(e) => e.field_errors(),
        };
        let hit = errs.iter().find(|e| e.path == path);
        assert!(
            hit.is_some(),
            "{}: expected an error at {path}, got {errs:?}",
            f.display()
        );
        if let Some(msg) = header("message") {
            assert!(
                hit.unwrap().message.contains(&msg),
                "{}: message {:?} lacks {msg:?}",
                f.display(),
                hit.unwrap().message
            );
        }
    }
}

#[test]
fn every_example_is_valid() {
    let files = yaml_files(&root().join("examples"));
    assert!(!files.is_empty());
    for f in files {
        if let Err(e) = load_file(&f) {
            panic!("{} is invalid:\n{e}", f.display());
        }
    }
}
