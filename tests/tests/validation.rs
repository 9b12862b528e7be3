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

/// Each rule that gives the runner a value is written once, in the api: for bad input the
/// runner's compile (skipping `validate`, as if it had been fooled) refuses with the very
/// error — path and words — that `stampede_api::validate` reports.
#[test]
fn the_runner_refuses_bad_input_with_the_error_validate_reports() {
    let file = |connection: &str, step: &str| {
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 1\n  duration: 1s\n  scenario:\n    connection: {{ {connection} }}\n    steps:\n      - {step}\n"
        )
    };
    let http = r#"http: { url: "http://127.0.0.1:8080" }"#;
    let ws = r#"websocket: { url: "ws://127.0.0.1:8080/ws" }"#;
    let tcp = r#"tcp: { address: "127.0.0.1:7000" }"#;
    let cases = [
        (
            file(r#"http: { url: "http://" }"#, "request: { path: / }"),
            "spec.scenario.connection.http.url",
            "not a URL",
        ),
        (
            file(
                r#"http2: { url: "http://127.0.0.1:8080?x=1" }"#,
                "request: { path: / }",
            ),
            "spec.scenario.connection.http2.url",
            "cannot carry a query",
        ),
        (
            file(r#"tcp: { address: "127.0.0.1" }"#, r#"send: { text: "x" }"#),
            "spec.scenario.connection.tcp.address",
            "expected host:port",
        ),
        (
            file(http, r#"request: { path: /, headers: { "X Id": "1" } }"#),
            "spec.scenario.steps[0].request.headers.X Id",
            "is not a valid header name",
        ),
        (
            file(
                r#"http2: { url: "http://127.0.0.1:8080", headers: { "a:b": "1" } }"#,
                "request: { path: / }",
            ),
            "spec.scenario.connection.http2.headers.a:b",
            "is not a valid header name",
        ),
        (
            file(http, "request: { method: get, path: / }"),
            "spec.scenario.steps[0].request.method",
            "upper-case HTTP method",
        ),
        (
            file(ws, r#"send: { base64: "%%%" }"#),
            "spec.scenario.steps[0].send.base64",
            "not valid base64",
        ),
        (
            file(ws, r#"send: { text: "a", base64: "YQ==" }"#),
            "spec.scenario.steps[0].send",
            "set exactly one of",
        ),
        (
            file(ws, r#"expect: { base64: "%%%" }"#),
            "spec.scenario.steps[0].expect.base64",
            "not valid base64",
        ),
        (
            file(ws, r#"expect: { regex: "(" }"#),
            "spec.scenario.steps[0].expect.regex",
            "not a regular expression",
        ),
        (
            file(tcp, r#"expect: { regex: "[" }"#),
            "spec.scenario.steps[0].expect.regex",
            "not a regular expression",
        ),
        (
            file(tcp, r#"expect: { timeout: 1s }"#),
            "spec.scenario.steps[0].expect",
            "a tcp reply needs exactly one of",
        ),
        (
            file(
                http,
                r#"{ request: { path: / }, extract: { id: { regex: "(" } } }"#,
            ),
            "spec.scenario.steps[0].extract.id.regex",
            "not a regular expression",
        ),
        (
            file(http, r#"{ request: { path: / }, extract: { id: "$[" } }"#),
            "spec.scenario.steps[0].extract.id",
            "not a JSONPath",
        ),
        (
            file(
                http,
                r#"{ request: { path: / }, extract: { id: { jsonPath: "$.a", regex: "a" } } }"#,
            ),
            "spec.scenario.steps[0].extract.id",
            "set `jsonPath`, or `regex`",
        ),
        (
            file(
                http,
                r#"{ request: { path: / }, check: { jsonPath: { "$$$": 1 } } }"#,
            ),
            "spec.scenario.steps[0].check.jsonPath.$$$",
            "not a JSONPath",
        ),
        (
            file(ws, r#"listen: { duration: 1s, timestampPath: "ts[" }"#),
            "spec.scenario.steps[0].listen.timestampPath",
            "not a JSONPath",
        ),
        (
            file(tcp, "request: { path: / }"),
            "spec.scenario.steps[0].request",
            "tcp connections take `send`, `expect` and `think` steps",
        ),
        (
            file(
                r#"redis: { url: "redis://127.0.0.1:6379/x" }"#,
                "command: [PING]",
            ),
            "spec.scenario.connection.redis.url",
            "the path is the database number",
        ),
        (
            file(&format!("{http}, {tcp}"), "request: { path: / }"),
            "spec.scenario.connection",
            "set exactly one connection kind, found http and tcp",
        ),
    ];
    for (text, path, words) in cases {
        let file = stampede_api::parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let reported = stampede_api::validate(&file, &Default::default());
        let loaded = stampede_runner::load::Loaded {
            file,
            base: PathBuf::from("."),
            values: Default::default(),
        };
        let refused = match stampede_runner::prepare(&loaded) {
            Ok(_) => panic!("the runner compiled {path}: {text}"),
            Err(e) => e.field_errors(),
        };
        let [refused] = refused.as_slice() else {
            panic!("{path}: the runner refused with {refused:?}")
        };
        assert_eq!(refused.path, path, "{text}");
        assert!(refused.message.contains(words), "{path}: {refused}");
        assert!(
            reported.contains(refused),
            "{path}: validate reported {reported:?}, the runner {refused}"
        );
    }
}
