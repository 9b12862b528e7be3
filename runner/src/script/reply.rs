//! Judging what arrived, for every kind: `extract` rules that keep parts of a reply for later
//! steps, and `check`s that pass or fail it. A kind hands over the reply's bytes (and, for
//! HTTP, its status and headers); the verdict is protocol-neutral.

use std::time::Duration;

use serde_json_path::JsonPath;
use stampede_api::FieldError;
pub use stampede_api::scenario::ExtractSource;
use stampede_api::scenario::{Check, Step};

use crate::script::finder;
use crate::script::template::Names;
use crate::stats::{Codes, Outcome};

#[derive(Debug)]
pub struct CExtract {
    pub slot: usize,
    pub source: ExtractSource,
}

#[derive(Debug, Default)]
pub struct CCheck {
    pub status: Option<Vec<u16>>,
    pub body_contains: Option<memchr::memmem::Finder<'static>>,
    pub json: Vec<(JsonPath, serde_json::Value)>,
    pub max_latency: Option<Duration>,
    /// The whole reply must equal this.
    pub reply: Option<Vec<u8>>,
    pub reply_type: Option<String>,
    pub reply_min: Option<i64>,
    pub reply_max: Option<i64>,
}

/// A step's extract and check rules, compiled: what every kind's step judges its reply by.
#[derive(Debug, Default)]
pub struct Rules {
    pub extract: Vec<CExtract>,
    pub check: CCheck,
}

impl Rules {
    pub fn compile(p: &str, step: &Step, names: &Names) -> Result<Rules, FieldError> {
        Ok(Rules {
            extract: compile_extract(p, step, names)?,
            check: compile_check(&format!("{p}.check"), step.check.as_ref())?,
        })
    }

    /// Whether a rule reads the reply as JSON (so it is parsed once, only then).
    pub fn needs_json(&self) -> bool {
        !self.check.json.is_empty()
            || self
                .extract
                .iter()
                .any(|e| matches!(e.source, ExtractSource::JsonPath(_)))
    }
}

/// What a reply was judged: its outcome, and the checks it passed and failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub passed: u64,
    pub failed: u64,
    /// The server's code, for a `server_error`.
    pub code: Code,
}

/// The server's own code for a `server_error`: an HTTP status, or a short text such as a
/// Redis error prefix. Copied inline, so recording one allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Code {
    #[default]
    None,
    Status(u16),
    Text([u8; Codes::MAX_LEN], u8),
}

impl Code {
    /// `text` cut to `Codes::MAX_LEN` bytes, anything but ASCII letters, digits, `_`, `-` and
    /// `.` turned into `_` (so a label never carries a server's control bytes).
    pub fn text(text: &[u8]) -> Code {
        let mut b = [0u8; Codes::MAX_LEN];
        let n = text.len().min(Codes::MAX_LEN);
        for (d, s) in b.iter_mut().zip(&text[..n]) {
            *d = if s.is_ascii_alphanumeric() || b"_-.".contains(s) {
                *s
            } else {
                b'_'
            };
        }
        Code::Text(b, n as u8)
    }

    /// Counts one error of this code into `codes`.
    pub fn count(&self, codes: &mut Codes) {
        match self {
            Code::None => {}
            Code::Status(s) => codes.add(itoa::Buffer::new().format(*s), 1),
            Code::Text(b, n) => {
                // Only ASCII was copied in, so this is always UTF-8.
                if let Ok(s) = std::str::from_utf8(&b[..usize::from(*n)]) {
                    codes.add(s, 1);
                }
            }
        }
    }
}

/// A reply as the rules see it.
pub struct Reply<'a, 'b> {
    pub body: &'a [u8],
    /// Its parse, when the caller already made one (a WebSocket matcher needs it first);
    /// otherwise `judge` parses the body, once, if the rules read JSON.
    pub json: Option<&'a serde_json::Value>,
    /// HTTP only.
    pub status: Option<u16>,
    pub header: &'a dyn Fn(&str) -> Option<&'b [u8]>,
    /// Its type, for kinds whose replies are typed (`check.replyType`).
    pub type_name: Option<&'static str>,
}

/// No headers: every kind but HTTP.
pub fn no_header(_: &str) -> Option<&'static [u8]> {
    None
}

impl Rules {
    /// Judges `body` (parsed here when the rules need JSON), `service` after it was sent.
    pub fn judge_body<'b>(
        &self,
        vars: &mut [Vec<u8>],
        body: &[u8],
        status: Option<u16>,
        header: &dyn Fn(&str) -> Option<&'b [u8]>,
        service: Duration,
    ) -> Verdict {
        self.judge(
            vars,
            &Reply {
                body,
                json: None,
                status,
                header,
                type_name: None,
            },
            service,
        )
    }

    /// Runs the extracts into `vars` and the checks.
    pub fn judge(&self, vars: &mut [Vec<u8>], r: &Reply, service: Duration) -> Verdict {
        let parsed: Option<serde_json::Value> = match r.json {
            None if self.needs_json() => serde_json::from_slice(r.body).ok(),
            _ => None,
        };
        let json = r.json.or(parsed.as_ref());
        let check = &self.check;
        let (mut passed, mut failed) = (0u64, 0u64);
        let mut tally = |ok: bool| if ok { passed += 1 } else { failed += 1 };
        let status_listed = match (&check.status, r.status) {
            (Some(s), Some(code)) => Some(s.contains(&code)),
            _ => None,
        };
        if let Some(listed) = status_listed {
            tally(listed);
        }
        let (mut outcome, code) = match r.status {
            _ if status_listed == Some(true) => (Outcome::Ok, Code::None),
            Some(s @ 400..) => (Outcome::ServerError, Code::Status(s)),
            _ => (Outcome::Ok, Code::None),
        };
        let mut extract_failed = false;
        for e in &self.extract {
            let slot = &mut vars[e.slot];
            slot.clear();
            let found = match &e.source {
                ExtractSource::Whole => {
                    slot.extend_from_slice(r.body);
                    true
                }
                ExtractSource::JsonPath(p) => json
                    .and_then(|j| p.query(j).first())
                    .map(|v| match v {
                        serde_json::Value::String(s) => slot.extend_from_slice(s.as_bytes()),
                        other => slot.extend_from_slice(other.to_string().as_bytes()),
                    })
                    .is_some(),
                ExtractSource::Regex(re) => capture(re, r.body)
                    .map(|c| slot.extend_from_slice(c))
                    .is_some(),
                ExtractSource::Header { name, regex } => (r.header)(name)
                    .and_then(|v| match regex {
                        Some(re) => capture(re, v),
                        None => Some(v),
                    })
                    .map(|c| slot.extend_from_slice(c))
                    .is_some(),
            };
            extract_failed |= !found;
        }
        if let Some(f) = &check.body_contains {
            tally(f.find(r.body).is_some());
        }
        for (path, want) in &check.json {
            let got = json.and_then(|j| path.query(j).first().cloned());
            tally(got.as_ref() == Some(want));
        }
        if let Some(max) = check.max_latency {
            tally(service <= max);
        }
        if let Some(want) = &check.reply {
            tally(r.body == want.as_slice());
        }
        if let Some(want) = &check.reply_type {
            tally(r.type_name == Some(want.as_str()));
        }
        if check.reply_min.is_some() || check.reply_max.is_some() {
            let n: Option<i64> = std::str::from_utf8(r.body)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            tally(n.is_some_and(|n| {
                check.reply_min.is_none_or(|m| n >= m) && check.reply_max.is_none_or(|m| n <= m)
            }));
        }
        if outcome == Outcome::Ok && extract_failed {
            outcome = Outcome::ExtractFailed;
        }
        if outcome == Outcome::Ok && failed > 0 {
            outcome = Outcome::CheckFailed;
        }
        Verdict {
            outcome,
            passed,
            failed,
            code,
        }
    }
}

fn capture<'a>(re: &regex::bytes::Regex, hay: &'a [u8]) -> Option<&'a [u8]> {
    let c = re.captures(hay)?;
    c.get(1).or_else(|| c.get(0)).map(|m| m.as_bytes())
}

fn compile_extract(p: &str, step: &Step, names: &Names) -> Result<Vec<CExtract>, FieldError> {
    let mut extract = Vec::new();
    for (k, rule) in &step.extract {
        let ep = format!("{p}.extract.{k}");
        let source = rule.source(&ep)?;
        // Validation gathered every extracted name into `names`: not finding one is a bug.
        let slot = names
            .extracted
            .iter()
            .position(|n| n == k)
            .ok_or_else(|| FieldError::new(&ep, "not among the scenario's extracted names"))?;
        extract.push(CExtract { slot, source });
    }
    Ok(extract)
}

fn compile_check(p: &str, c: Option<&Check>) -> Result<CCheck, FieldError> {
    let Some(c) = c else {
        return Ok(CCheck::default());
    };
    Ok(CCheck {
        status: c.status.as_ref().map(|s| s.codes().to_vec()),
        body_contains: c.body_contains.as_ref().map(|s| finder(s.as_bytes())),
        json: c.parsed_json_paths(p)?,
        max_latency: c.max_latency.map(|d| d.as_std()),
        reply: c.reply.as_ref().map(|r| r.as_bytes().to_vec()),
        reply_type: c.reply_type.clone(),
        reply_min: c.reply_min,
        reply_max: c.reply_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(check: &str, extract: &str) -> Rules {
        let step: Step = serde_json::from_str(&format!(
            r#"{{ "send": {{ "text": "x" }}, "expect": {{}}, "check": {check}, "extract": {extract} }}"#
        ))
        .unwrap();
        let names = Names {
            variables: vec![],
            extracted: step.extract.keys().cloned().collect(),
            data: vec![],
            run_id: String::new(),
        };
        Rules::compile("s", &step, &names).unwrap()
    }

    fn judge(r: &Rules, body: &[u8], type_name: Option<&'static str>) -> (Verdict, Vec<Vec<u8>>) {
        let mut vars = vec![Vec::new(); r.extract.len()];
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let v = r.judge(
            &mut vars,
            &Reply {
                body,
                json: json.as_ref(),
                status: None,
                header: &no_header,
                type_name,
            },
            Duration::ZERO,
        );
        (v, vars)
    }

    #[test]
    fn whole_replies_their_types_and_integer_bounds_are_checked() {
        let r = rules(
            r#"{ "reply": "OK", "replyType": "status" }"#,
            r#"{ "all": "reply" }"#,
        );
        let (v, vars) = judge(&r, b"OK", Some("status"));
        assert_eq!((v.outcome, v.passed, v.failed), (Outcome::Ok, 2, 0));
        assert_eq!(vars[0], b"OK");
        let (v, _) = judge(&r, b"OK!", Some("string"));
        assert_eq!((v.outcome, v.failed), (Outcome::CheckFailed, 2));

        let r = rules(r#"{ "replyMin": 1, "replyMax": 10 }"#, "{}");
        for (body, ok) in [
            (&b"1"[..], true),
            (b"10", true),
            (b"0", false),
            (b"11", false),
            (b"x", false),
        ] {
            assert_eq!(judge(&r, body, None).0.failed == 0, ok, "{body:?}");
        }
    }

    #[test]
    fn an_array_element_is_extracted_by_its_index() {
        let r = rules("{}", r#"{ "second": { "reply": 1 } }"#);
        let (v, vars) = judge(&r, br#"["a","b"]"#, Some("array"));
        assert_eq!(v.outcome, Outcome::Ok);
        assert_eq!(vars[0], b"b");
        let (v, _) = judge(&r, b"[]", Some("array"));
        assert_eq!(v.outcome, Outcome::ExtractFailed);
    }
}
