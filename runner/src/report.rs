//! `stampede report`: reads a summary file (`stampede run --out`, `stampede-operator local
//! --out`), checks that it is one, and writes the HTML report. The rendering itself is
//! `stampede_report::html` (pure); this module owns only the files and their errors.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::results::{SUMMARY_SCHEMA, Summary};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} is not a Stampede summary: {why} (expected `\"schema\": \"{SUMMARY_SCHEMA}\"`, as `stampede run --out` writes)"
    )]
    NotASummary { path: PathBuf, why: String },
    #[error("{path} does not match the summary schema {SUMMARY_SCHEMA}: at `{field}`: {message}")]
    Schema {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads and checks a summary file.
pub fn load_summary(path: &Path) -> Result<Summary, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
        path: path.into(),
        source,
    })?;
    parse_summary(path, &bytes)
}

/// Parses a summary; `path` only names it in errors.
pub fn parse_summary(path: &Path, bytes: &[u8]) -> Result<Summary, ReportError> {
    // JSON first, then the schema tag, then the fields: each failure says which it was.
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| ReportError::NotJson {
            path: path.into(),
            source,
        })?;
    let not_a_summary = |why: String| ReportError::NotASummary {
        path: path.into(),
        why,
    };
    let schema = match &value {
        serde_json::Value::Object(m) => m.get("schema"),
        other => {
            return Err(not_a_summary(format!(
                "the top level is {}, not an object",
                json_kind(other)
            )));
        }
    };
    match schema {
        Some(serde_json::Value::String(s)) if s == SUMMARY_SCHEMA => {}
        Some(serde_json::Value::String(s)) => {
            return Err(not_a_summary(format!("its schema is {s:?}")));
        }
        Some(other) => {
            return Err(not_a_summary(format!(
                "`schema` is {}, not a string",
                json_kind(other)
            )));
        }
        None => return Err(not_a_summary("it has no `schema` field".into())),
    }
    // `series` is optional: a summary without it (trimmed by hand, or by a tool that keeps
    // only the totals) still has a table, and its charts say `no data`. `Summary` itself
    // requires the field, so an absent one is read as empty here.
    if let serde_json::Value::Object(m) = &mut value {
        m.entry("series")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    serde_path_to_error::deserialize(value).map_err(|e| ReportError::Schema {
        path: path.into(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Renders `summary` as one self-contained HTML page into `out`.
pub fn write_html(summary: &Summary, out: &Path) -> Result<(), ReportError> {
    std::fs::write(out, stampede_report::html::render(summary)).map_err(|source| {
        ReportError::Write {
            path: out.into(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Summary, ReportError> {
        parse_summary(Path::new("s.json"), text.as_bytes())
    }

    fn valid() -> serde_json::Value {
        let s = Summary {
            schema: SUMMARY_SCHEMA.into(),
            name: "t".into(),
            ..Summary::default()
        };
        serde_json::from_slice(&s.to_json_pretty()).unwrap()
    }

    #[test]
    fn a_summary_written_by_run_reads_back() {
        let s = parse(&valid().to_string()).unwrap();
        assert_eq!(s.name, "t");
    }

    #[test]
    fn text_that_is_not_json_is_named_as_such() {
        let e = parse("apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n").unwrap_err();
        assert!(matches!(e, ReportError::NotJson { .. }), "{e:?}");
        assert!(e.to_string().starts_with("s.json is not JSON: "), "{e}");
    }

    #[test]
    fn json_without_the_summary_schema_is_refused() {
        for (text, why) in [
            ("[1, 2]", "the top level is an array"),
            (r#"{"name": "x"}"#, "no `schema` field"),
            (r#"{"schema": "other/v9"}"#, r#"its schema is "other/v9""#),
            (r#"{"schema": 1}"#, "`schema` is a number"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.starts_with("s.json is not a Stampede summary: ") && e.contains(why),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_wrong_field_is_named_by_its_path() {
        let mut v = valid();
        v["totals"]["requests"] = "many".into();
        let e = parse(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("at `totals.requests`: invalid type"), "{e}");
        let mut v = valid();
        v.as_object_mut().unwrap().remove("steps");
        let e = parse(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("missing field `steps`"), "{e}");
    }

    #[test]
    fn a_summary_without_series_reads_back_with_an_empty_series() {
        let mut v = valid();
        v["series"] = serde_json::json!([{ "t": 1, "iterations": 3, "requests": 3, "errors": 0,
            "dropped": 0, "activeConnections": 1, "targetConnections": 1, "targetRate": null,
            "p50Ms": null, "p95Ms": null, "p99Ms": null, "bytesSent": 0, "bytesReceived": 0 }]);
        assert_eq!(parse(&v.to_string()).unwrap().series.len(), 1);
        v.as_object_mut().unwrap().remove("series");
        let s = parse(&v.to_string()).unwrap();
        assert!(s.series.is_empty());
        let html = stampede_report::html::render(&s);
        assert!(html.contains("no data"), "{html}");
        // Present but wrong is still refused, by its path.
        v["series"] = "none".into();
        let e = parse(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("at `series`: invalid type"), "{e}");
    }

    #[test]
    fn reading_and_writing_failures_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = load_summary(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let out = dir.path().join("no-such-dir/report.html");
        let e = write_html(&Summary::default(), &out)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot write {}", out.display())),
            "{e}"
        );
        let ok = dir.path().join("report.html");
        write_html(&Summary::default(), &ok).unwrap();
        assert!(
            std::fs::read_to_string(ok)
                .unwrap()
                .starts_with("<!DOCTYPE html>")
        );
    }
}
