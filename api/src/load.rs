//! Reading a LoadTest document from YAML text, with the path of the offending field in
//! every error. Pure: the caller reads the file.
//!
//! serde's messages name Rust types (`expected u32`, `struct Request`); `parse` rewrites them
//! in the user's words ("a whole number of users (e.g. 100)", "a map of fields") and adds the
//! line and column. A message must never show a Rust type name or a `?` path segment.

use std::collections::BTreeMap;

use serde_path_to_error::{Path, Segment};
use thiserror::Error;

use crate::spec::LoadTestFile;
use crate::validate::{DataShape, FieldError, validate};

#[derive(Debug, Error)]
pub enum LoadError {
    /// The text is not YAML, or a field has the wrong type, is unknown or is missing.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// The document parsed but says something impossible.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl LoadError {
    /// Every problem as (path, message).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadError::Syntax { path, message } => vec![FieldError {
                path: path.clone(),
                message: message.clone(),
            }],
            LoadError::Invalid(v) => v.clone(),
        }
    }
}

/// Parses YAML (or JSON) text into a LoadTest, without semantic checks.
pub fn parse(text: &str) -> Result<LoadTestFile, LoadError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = known_path(e.path());
        let inner = e.into_inner();
        let at = inner.location().map(|l| (l.line(), l.column()));
        let mut message = inner.to_string();
        // A YAML syntax error is the one parsing the text as any YAML value meets, too.
        let syntax = serde_norway::from_str::<serde_norway::Value>(text)
            .err()
            .is_some_and(|s| s.to_string() == message);
        if let Some((line, column)) = at {
            message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
        }
        let message = if syntax {
            syntax_message(text, &message, at)
        } else {
            // The YAML error text repeats a path prefix ("spec.connections: invalid type…").
            if let Some((head, rest)) = message.split_once(": ")
                && !head.contains(char::is_whitespace)
                && path.starts_with(head)
            {
                message = rest.to_string();
            }
            let words = in_user_words(last_field(&path), &message);
            match at {
                Some((line, column)) => format!("{words} (line {line}, column {column})"),
                None => words,
            }
        };
        LoadError::Syntax {
            path: if path.is_empty() {
                "(document)".into()
            } else {
                path
            },
            message,
        }
    })
}

/// The path down to the first segment serde could not name (it prints those as `?`, e.g.
/// inside a broken `{ … }` map): the field the problem is in.
fn known_path(path: &Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out += &format!("[{index}]"),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out += key;
            }
            Segment::Unknown => break,
        }
    }
    out
}

/// The last field name of a path (`connections` in `spec.stages[0].connections`).
fn last_field(path: &str) -> &str {
    let tail = path.rsplit('.').next().unwrap_or(path);
    tail.split('[').next().unwrap_or(tail)
}

/// A YAML syntax error (`problem at line L column C, while parsing … at line A column B`), with
/// its place and a hint; `text` is the document, to look at the character at fault.
fn syntax_message(text: &str, problem: &str, at: Option<(usize, usize)>) -> String {
    let place = match at {
        Some((line, column)) => format!(" at line {line} column {column}"),
        None => String::new(),
    };
    let at_fault = at.and_then(|(line, column)| {
        text.lines()
            .nth(line.checked_sub(1)?)?
            .chars()
            .nth(column.checked_sub(1)?)
    });
    let hint = if at_fault == Some('\t') {
        "indent with spaces, not tabs"
    } else if problem.contains("flow mapping") {
        "a { … } map needs its closing } and a \": \" between each key and its value, entries separated by commas"
    } else if problem.contains("flow sequence") {
        "a [ … ] list needs its closing ] and its items separated by commas"
    } else if problem.contains("mapping values are not allowed") {
        "a value containing \": \" must be quoted, or a line is indented too far"
    } else if problem.contains("quoted scalar") {
        "a quoted text needs its closing quote"
    } else if problem.contains("block collection") || problem.contains("block mapping") {
        "the entries of one list or map must start in the same column"
    } else {
        "check the indentation, brackets and quotes on this line and the one before it"
    };
    format!("not valid YAML{place}: {problem} (hint: {hint})")
}

/// What a field holds, for fields whose type alone says too little ("a whole number"): used
/// when serde names a number type or an enum for this field name.
const FIELD_WORDS: &[(&str, &str)] = &[
    ("connections", "a whole number of users (e.g. 100)"),
    ("rate", "a number of iterations per second (e.g. 200)"),
    (
        "connectRate",
        "a number of new connections per second (e.g. 50)",
    ),
    ("runners", "a whole number of runners (e.g. 4)"),
    (
        "maxConnections",
        "a whole number of users per runner (e.g. 1000)",
    ),
    (
        "streams",
        "a whole number of streams per connection (e.g. 10)",
    ),
    (
        "lengthPrefix",
        "the size of the length prefix in bytes: 1, 2, 4 or 8",
    ),
    (
        "ttlSecondsAfterFinished",
        "a whole number of seconds (e.g. 3600)",
    ),
    ("tolerationSeconds", "a whole number of seconds (e.g. 300)"),
    ("timestampUnit", "one of s, ms, us, ns"),
    ("pick", "one of sequential, random, unique"),
    ("version", "http1"),
];

/// Rust number types by name: (words, largest value for unsigned ones).
fn number_words(ty: &str) -> Option<(&'static str, Option<u64>)> {
    Some(match ty {
        "f32" | "f64" => ("a number", None),
        "u8" => ("a whole number from 0 to 255", Some(u8::MAX.into())),
        "u16" => ("a whole number from 0 to 65535", Some(u16::MAX.into())),
        "u32" => ("a whole number, 0 or more", Some(u32::MAX.into())),
        "u64" | "usize" | "u128" => ("a whole number, 0 or more", Some(u64::MAX)),
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => ("a whole number", None),
        _ => return None,
    })
}

/// serde's `expected …` text in the user's words, `field` naming what the field holds.
fn expected_words(field: &str, expected: &str) -> String {
    let named = FIELD_WORDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, w)| *w);
    let enum_like = expected.starts_with("enum ") || expected.contains("YAML tag");
    if let Some(words) = named
        && (number_words(expected).is_some() || enum_like)
    {
        return words.to_string();
    }
    if let Some((words, _)) = number_words(expected) {
        return words.to_string();
    }
    match expected {
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" => "text".into(),
        "a character" => "a single character".into(),
        "a sequence" => "a list".into(),
        "a map" => "a map".into(),
        "unit" => "nothing".into(),
        e if e.starts_with("struct ") => "a map of fields".into(),
        e if enum_like || e.starts_with("tuple") || e.starts_with("unit struct") => {
            "a different kind of value".into()
        }
        e => e.to_string(),
    }
}

/// serde's `Unexpected` text (`string "fast"`, `floating point `1.5``) as what the file holds.
fn found_words(found: &str) -> String {
    let ticked = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .and_then(|v| v.strip_prefix('`'))
            .and_then(|v| v.strip_suffix('`'))
            .map(str::to_string)
    };
    if let Some(v) = ticked("integer ")
        .or_else(|| ticked("floating point "))
        .or_else(|| ticked("boolean "))
    {
        return v;
    }
    if let Some(c) = ticked("character ") {
        return format!("{c:?}");
    }
    if let Some(s) = found.strip_prefix("string ") {
        return s.to_string();
    }
    match found {
        "unit value" => "nothing (an empty value)".into(),
        "sequence" => "a list".into(),
        "map" => "a map".into(),
        "byte array" => "bytes".into(),
        "Option value" | "newtype struct" => "a value".into(),
        "enum" | "unit variant" | "newtype variant" | "tuple variant" | "struct variant" => {
            "a tagged value".into()
        }
        f => f.to_string(),
    }
}

/// A serde message in the user's words; messages it does not know pass unchanged.
fn in_user_words(field: &str, message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(kind)
            && let Some(i) = rest.rfind(", expected ")
        {
            let (found, expected) = (&rest[..i], &rest[i + ", expected ".len()..]);
            let mut words = format!(
                "expected {}, found {}",
                expected_words(field, expected),
                found_words(found)
            );
            // An integer past the type's range: say the limit.
            if let Some((_, Some(max))) = number_words(expected)
                && let Some(n) = found
                    .strip_prefix("integer `")
                    .and_then(|v| v.strip_suffix('`'))
                    .and_then(|v| v.parse::<u128>().ok())
                && n > u128::from(max)
            {
                words += &format!(", more than {max}");
            }
            return words;
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((value, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {expected}, found {value}");
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, _)) = rest.split_once('`')
        && let Some((name, value)) = key.split_once(' ')
    {
        return format!(
            "{message} (a key and its value are separated by a colon and a space: `{name}: {value}`)"
        );
    }
    message.to_string()
}

/// Parses and validates. `csv` holds the shape of CSV data sets, by set name.
pub fn parse_and_validate(
    text: &str,
    csv: &BTreeMap<String, DataShape>,
) -> Result<LoadTestFile, LoadError> {
    let file = parse(text)?;
    let errs = validate(&file, csv);
    if errs.is_empty() {
        Ok(file)
    } else {
        Err(LoadError::Invalid(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid file with `spec_line` added under `spec:` and `step` as its one step.
    fn file(spec_line: &str, step: &str) -> String {
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 5\n  duration: 5s\n{spec_line}\n  scenario:\n    connection: {{ http: {{ url: \"http://127.0.0.1:8080\" }} }}\n    steps:\n      - {step}\n"
        )
    }

    /// The (path, message) `parse` refuses `text` with; fails on Rust words in either.
    fn refusal(text: &str) -> (String, String) {
        let (path, message) = match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(LoadError::Syntax { path, message }) => (path, message),
            Err(e) => panic!("refused after parsing: {e}"),
        };
        for rust in [
            "f64",
            "u8",
            "u16",
            "u32",
            "u64",
            "untagged",
            "variant",
            "StatusSet",
            "Extract",
            "struct",
            "sequence",
            "?",
        ] {
            assert!(
                !path.contains(rust) && !message.contains(rust),
                "{rust:?} in {path}: {message}"
            );
        }
        (path, message)
    }

    #[test]
    fn template_arithmetic_is_checked_at_load_with_the_field_path() {
        let with = |spec_line: &str, path: &str| {
            let text = file(spec_line, &format!("{{ request: {{ path: \"{path}\" }} }}"));
            parse_and_validate(&text, &BTreeMap::new())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(with("", "/o/{{ vu.id * 1000 + iteration }}"), None);
        let e = with("", "/o/{{ 1 / 0 }}").expect("refused");
        assert!(
            e.contains("spec.scenario.steps[0].request.path") && e.contains("by zero"),
            "{e}"
        );
        let e = with("", "/o/{{ uuid() * 2 }}").expect("refused");
        assert!(
            e.contains("spec.scenario.steps[0].request.path") && e.contains("uuid()"),
            "{e}"
        );
        let e = with("", "/o/{{ nope + 1 }}").expect("refused");
        assert!(e.contains("unknown name `nope`"), "{e}");
        let vars = |value: &str| {
            let text = format!(
                "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 1\n  duration: 1s\n  scenario:\n    variables: {{ base: \"{value}\" }}\n    connection: {{ http: {{ url: \"http://127.0.0.1:8080\" }} }}\n    steps:\n      - request: {{ path: \"/{{{{ base * 2 }}}}\" }}\n"
            );
            parse_and_validate(&text, &BTreeMap::new())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(vars("21"), None);
        let e = vars("abc").expect("refused");
        assert!(
            e.contains("spec.scenario.steps[0].request.path")
                && e.contains("variable `base` is used in arithmetic"),
            "{e}"
        );
    }

    #[test]
    fn a_quoted_status_says_an_http_status_number_or_a_list_is_expected_at_its_path() {
        let (path, msg) = refusal(&file(
            "",
            "request: { path: / }\n        check: { status: \"200\" }",
        ));
        assert_eq!(path, "spec.scenario.steps[0].check.status");
        assert!(
            msg.starts_with(
                "expected an HTTP status number like 200, or a list like [200, 201], found the text \"200\""
            ),
            "{msg}"
        );
        assert!(msg.contains("without quotes"), "{msg}");
        assert!(msg.contains("(line 12, column 26)"), "{msg}");
    }

    #[test]
    fn a_status_list_entry_that_is_not_a_number_is_named_by_its_index() {
        let (path, msg) = refusal(&file(
            "",
            "request: { path: / }\n        check: { status: [200, ok] }",
        ));
        assert_eq!(path, "spec.scenario.steps[0].check.status[1]");
        assert!(
            msg.starts_with("expected an HTTP status number like 200, found \"ok\""),
            "{msg}"
        );
    }

    #[test]
    fn a_status_map_says_what_is_accepted() {
        let (path, msg) = refusal(&file(
            "",
            "request: { path: / }\n        check: { status: { code: 200 } }",
        ));
        assert_eq!(path, "spec.scenario.steps[0].check.status");
        assert!(
            msg.starts_with(
                "expected an HTTP status number like 200, or a list like [200, 201], found a map"
            ),
            "{msg}"
        );
    }

    #[test]
    fn status_lists_and_single_statuses_still_parse() {
        for (status, codes) in [("201", vec![201]), ("[200, 404]", vec![200, 404])] {
            let f = parse(&file(
                "",
                &format!("request: {{ path: / }}\n        check: {{ status: {status} }}"),
            ))
            .unwrap();
            let check = f.spec.scenario.steps[0].check.as_ref().unwrap();
            assert_eq!(check.status.as_ref().unwrap().codes(), codes);
        }
    }

    #[test]
    fn an_extract_that_is_neither_a_json_path_nor_a_rule_says_both_forms() {
        let (path, msg) = refusal(&file(
            "",
            "request: { path: / }\n        extract: { id: 5 }",
        ));
        assert_eq!(path, "spec.scenario.steps[0].extract.id");
        assert!(
            msg.starts_with(
                "expected a JSONPath such as \"$.token\", `reply` (the whole reply), or a map with jsonPath, header and/or regex, or reply, found 5"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_misspelt_extract_rule_field_is_named_with_the_fields_accepted() {
        let (path, msg) = refusal(&file(
            "",
            "request: { path: / }\n        extract: { id: { jsonPth: $.id } }",
        ));
        assert_eq!(path, "spec.scenario.steps[0].extract.id.jsonPth");
        assert!(
            msg.contains(
                "unknown field `jsonPth`, expected one of `jsonPath`, `header`, `regex`, `reply`"
            ),
            "{msg}"
        );
    }

    #[test]
    fn extracts_as_a_json_path_or_a_rule_still_parse() {
        let f = parse(&file(
            "",
            "request: { path: / }\n        extract: { a: $.a, b: { header: X-Id } }",
        ))
        .unwrap();
        let ex = &f.spec.scenario.steps[0].extract;
        assert_eq!(ex["a"], crate::scenario::Extract::JsonPath("$.a".into()));
        assert!(
            matches!(&ex["b"], crate::scenario::Extract::Rule(r) if r.header.as_deref() == Some("X-Id"))
        );
    }

    #[test]
    fn a_rate_that_is_text_says_a_number_of_iterations_per_second_is_expected() {
        let (path, msg) = refusal(&file("  rate: fast", "request: { path: / }"));
        assert_eq!(path, "spec.rate");
        assert_eq!(
            msg,
            "expected a number of iterations per second (e.g. 200), found \"fast\" (line 7, column 9)"
        );
    }

    #[test]
    fn fractional_connections_say_a_whole_number_of_users_is_expected() {
        let text = file("", "request: { path: / }").replace("connections: 5", "connections: 1.5");
        let (path, msg) = refusal(&text);
        assert_eq!(path, "spec.connections");
        assert_eq!(
            msg,
            "expected a whole number of users (e.g. 100), found 1.5 (line 5, column 16)"
        );
    }

    #[test]
    fn connections_without_a_value_say_what_is_expected_and_that_nothing_was_found() {
        let text = file("", "request: { path: / }").replace("connections: 5", "connections:");
        let (path, msg) = refusal(&text);
        assert_eq!(path, "spec.connections");
        assert!(
            msg.starts_with("expected a whole number of users (e.g. 100), found nothing"),
            "{msg}"
        );
    }

    #[test]
    fn connections_past_the_largest_number_say_the_limit() {
        let text =
            file("", "request: { path: / }").replace("connections: 5", "connections: 99999999999");
        let (path, msg) = refusal(&text);
        assert_eq!(path, "spec.connections");
        assert!(
            msg.contains("found 99999999999, more than 4294967295"),
            "{msg}"
        );
    }

    #[test]
    fn type_errors_of_other_fields_are_written_in_plain_words() {
        for (spec_line, step, path, words) in [
            (
                "  suspend: maybe",
                "request: { path: / }",
                "spec.suspend",
                "expected true or false, found \"maybe\"",
            ),
            (
                "  connectRate: [1]",
                "request: { path: / }",
                "spec.connectRate",
                "expected a number of new connections per second (e.g. 50), found a list",
            ),
            (
                "  stages: [{ duration: 5s, connections: x }]",
                "request: { path: / }",
                "spec.stages[0].connections",
                "expected a whole number of users (e.g. 100), found \"x\"",
            ),
            (
                "  thresholds: rate > 5",
                "request: { path: / }",
                "spec.thresholds",
                "expected a list, found \"rate > 5\"",
            ),
            (
                "",
                "request: [ / ]",
                "spec.scenario.steps[0].request",
                "expected a map of fields, found a list",
            ),
            (
                "",
                "request: { path: /, headers: [a] }",
                "spec.scenario.steps[0].request.headers",
                "expected a map, found a list",
            ),
            (
                "",
                "request: { path: / }\n        expect: { lengthPrefix: 300 }",
                "spec.scenario.steps[0].expect.lengthPrefix",
                "expected the size of the length prefix in bytes: 1, 2, 4 or 8, found 300",
            ),
            (
                "",
                "listen: { duration: 1s, timestampUnit: [ms] }",
                "spec.scenario.steps[0].listen.timestampUnit",
                "expected one of s, ms, us, ns, found a list",
            ),
            (
                "",
                "request: { path: / }\n        think: [1s]",
                "spec.scenario.steps[0].think",
                "expected a duration such as 250ms, 30s, 5m or 1h30m (units: h, m, s, ms, us), found a list",
            ),
            (
                "",
                "request: { path: / }\n        think: 1d",
                "spec.scenario.steps[0].think",
                "found \"1d\"",
            ),
            (
                "  runners: many",
                "request: { path: / }",
                "spec.runners",
                "expected a whole number of runners (e.g. 4), found \"many\"",
            ),
        ] {
            let (p, msg) = refusal(&file(spec_line, step));
            assert_eq!(p, path, "{msg}");
            assert!(msg.contains(words), "{path}: {msg}");
            assert!(msg.contains("(line "), "{path}: {msg}");
        }
    }

    #[test]
    fn an_unclosed_flow_map_names_the_field_the_line_and_a_hint_without_question_marks() {
        let (path, msg) = refusal(&file("", "request: { method: GET, path: /x"));
        assert_eq!(path, "spec.scenario.steps[0].request");
        assert!(
            msg.starts_with("not valid YAML at line 12 column 1: did not find expected ',' or '}'"),
            "{msg}"
        );
        assert!(msg.contains("flow mapping at line 11 column 18"), "{msg}");
        assert!(msg.contains("needs its closing }"), "{msg}");
    }

    #[test]
    fn a_missing_comma_in_a_flow_map_gives_the_line_and_column() {
        let (path, msg) = refusal(&file("", "request: { method: GET path: /x }"));
        assert_eq!(path, "spec.scenario.steps[0].request");
        assert!(
            msg.starts_with("not valid YAML at line 11 column 36:"),
            "{msg}"
        );
        assert!(msg.contains("hint:"), "{msg}");
    }

    #[test]
    fn a_key_without_its_colon_is_shown_how_to_write_it() {
        let (path, msg) = refusal(&file("", "request: { method GET }"));
        assert_eq!(path, "spec.scenario.steps[0].request.method GET");
        assert!(msg.contains("unknown field `method GET`"), "{msg}");
        assert!(msg.contains("`method: GET`"), "{msg}");
    }

    #[test]
    fn a_tab_in_the_indentation_says_to_indent_with_spaces() {
        let (path, msg) = refusal(&file("", "request: { path: / }\n\tthink: 1s"));
        assert_eq!(path, "spec.scenario.steps[0]");
        assert!(
            msg.starts_with("not valid YAML at line 12 column 1:"),
            "{msg}"
        );
        assert!(msg.contains("indent with spaces, not tabs"), "{msg}");
    }

    #[test]
    fn an_unclosed_quote_names_the_field_and_says_so() {
        let (path, msg) = refusal(&file("", "request: { path: \"/x }"));
        assert_eq!(path, "spec.scenario.steps[0].request.path");
        assert!(msg.contains("needs its closing quote"), "{msg}");
    }

    #[test]
    fn a_document_that_is_not_a_map_is_refused_at_the_document() {
        let (path, msg) = refusal("- 1\n");
        assert_eq!(path, "(document)");
        assert!(
            msg.starts_with("expected a map of fields, found a list"),
            "{msg}"
        );
    }
}
