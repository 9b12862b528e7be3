//! The steps a user runs, kind-neutral in shape: each kind takes the actions it speaks
//! (`request`; `send`/`expect`/`listen`) and judges replies with the same `check` and `extract`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json_path::JsonPath;

use crate::duration::Duration;
use crate::validate::FieldError;
use crate::validate::fields::{
    json_path_map, parse_base64, parse_json_path, parse_method, parse_regex,
};

/// One step: a `request` (http, http2), a `send` with an optional `expect` (websocket, tcp,
/// udp), an `expect` alone (wait for what the server sends), a `listen` (websocket) or a
/// `think` pause.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// The name results are reported under. Defaults to `METHOD path` for a request, and to
    /// `send`, `expect` or `listen` otherwise; steps with the same name share their results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An HTTP request over the user's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// A message to send: a WebSocket message, bytes on a TCP connection, or a UDP datagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Payload>,
    /// What to wait for, after `send` or alone: a matching WebSocket message, one framed
    /// reply on TCP, or a reply datagram on UDP. Latency runs from the send (or from the
    /// step's start, alone) to its arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Hold the WebSocket connection and record what the server pushes: each message counts
    /// as one answer of this step, and its push latency is recorded when it carries a send
    /// timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Listen>,
    /// A Redis command: its name and arguments, each a template, e.g.
    /// `[SET, "user:{{ vu.id }}", "{{ randomString(100) }}"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// With `command`: write this many rendered copies in one write. Each copy is one
    /// request, timed to its own reply and judged by the step's check; extract keeps the
    /// last reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<u32>,
    /// With `command`: how long the replies may take, from the write. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A pause before the next step (a WebSocket connection keeps answering pings and
    /// sending heartbeats meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Duration>,
    /// Values taken from the response or received message, usable by later steps as
    /// `{{ name }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extract: BTreeMap<String, Extract>,
    /// Conditions the response or received message must meet. A failed check is counted,
    /// never fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// A message's content: exactly one of `text`, `json` or `base64`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payload {
    /// Text, which may hold `{{ … }}` templates (a WebSocket text message; UTF-8 bytes on TCP
    /// and UDP). Write `"\n"`-style line ends in YAML double quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A JSON document whose strings may hold templates (a WebSocket text message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "crate::crd::any_value"))]
    pub json: Option<serde_json::Value>,
    /// Raw bytes, base64-encoded (a WebSocket binary message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// What a step waits for. On WebSocket the conditions choose the message (others are
/// skipped); on TCP `delimiter`, `lengthPrefix` or `regex` says where the reply ends; on UDP
/// the next datagram is the reply. `check` then judges what arrived.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// WebSocket: a text message equal to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// WebSocket: a message containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// WebSocket: a JSON message where each JSONPath has the given value, e.g.
    /// `{"$.type": "pong"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "crate::crd::any_object"))]
    pub json_path: BTreeMap<String, serde_json::Value>,
    /// WebSocket: a message matching this regular expression. TCP: the reply ends where the
    /// bytes read so far first match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// WebSocket: a binary message equal to these bytes, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// TCP: the reply ends with this text (included in it), e.g. `"\n"` or `"\r\n"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// TCP: the reply starts with its length as a big-endian unsigned integer of this many
    /// bytes (1, 2, 4 or 8), which counts the bytes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_prefix: Option<u8>,
    /// How long to wait. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Passive listening on a WebSocket connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listen {
    /// How long to listen, e.g. `30s`.
    pub duration: Duration,
    /// A JSONPath to the time the server sent the message, e.g. `$.ts`: push latency is
    /// the arrival time minus it (clocks of both ends must agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_path: Option<String>,
    /// The unit of that timestamp since the Unix epoch: `s`, `ms` (default), `us` or `ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_unit: Option<TimestampUnit>,
}

/// The unit of a timestamp since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TimestampUnit {
    S,
    #[default]
    Ms,
    Us,
    Ns,
}

impl TimestampUnit {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> f64 {
        match self {
            TimestampUnit::S => 1e9,
            TimestampUnit::Ms => 1e6,
            TimestampUnit::Us => 1e3,
            TimestampUnit::Ns => 1.0,
        }
    }
}

/// An HTTP request. Every string may hold `{{ … }}` templates.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// HTTP method. Default GET.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path (and optionally query) appended to the connection URL, starting with `/`.
    pub path: String,
    /// Query parameters, appended URL-encoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A raw body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON body (sets `Content-Type: application/json`). Strings may hold templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "crate::crd::any_value"))]
    pub json: Option<serde_json::Value>,
    /// How long the whole exchange may take. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

fn default_method() -> String {
    "GET".into()
}

/// Where an extracted value comes from: a JSONPath string (`$.token`), `reply` (the whole
/// reply), or one of `jsonPath`, `regex` (first capture group of the body), `header`
/// (optionally with `regex`) or `reply: N` (element N of an array reply).
// Deserialized by hand: serde's untagged enums answer any mismatch with "data did not match
// any variant of untagged enum", naming neither the forms accepted nor what was found.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Extract {
    JsonPath(String),
    Rule(ExtractRule),
}

impl Extract {
    /// The string that takes the whole reply instead of a JSONPath into it.
    pub const WHOLE: &'static str = "reply";
}

impl<'de> Deserialize<'de> for Extract {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Extract;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a JSONPath such as \"$.token\", `reply` (the whole reply), or a map with jsonPath, header and/or regex, or reply",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Extract, E> {
                Ok(Extract::JsonPath(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Extract, A::Error> {
                ExtractRule::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Extract::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

/// An extraction rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractRule {
    /// A JSONPath into the JSON body, e.g. `$.order.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// A response header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A regular expression; its first capture group (or whole match) is taken from the body,
    /// or from the header when `header` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Element N (from 0) of an array reply (a Redis array; a JSON array body): the same as
    /// `jsonPath: "$[N]"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<u32>,
}

/// Conditions a response must meet.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    /// Expected status code(s). A listed status is not counted as an error even when ≥ 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusSet>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// JSONPath → expected JSON value, e.g. `{"$.ok": true}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "crate::crd::any_object"))]
    pub json_path: BTreeMap<String, serde_json::Value>,
    /// The response must arrive within this time of the request being sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<Duration>,
    /// The whole reply (body, message, Redis reply as text) must equal this, e.g. `"OK"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The reply must be of this type, for kinds whose replies are typed (Redis: `status`,
    /// `error`, `integer`, `string`, `nil`, `array`). `error` also makes an error reply the
    /// expected answer rather than a `server_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_type: Option<String>,
    /// The reply must be an integer of at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_min: Option<i64>,
    /// The reply must be an integer of at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_max: Option<i64>,
}

/// One status code or a list of them.
// Deserialized by hand, as `Extract` is.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

/// What `check.status` accepts, for messages.
const STATUS_SET: &str = "an HTTP status number like 200, or a list like [200, 201]";
/// What each entry of a `check.status` list accepts.
const STATUS: &str = "an HTTP status number like 200";

/// A status number, or a refusal saying what `expected` and what was found.
fn status_code<E: de::Error>(v: u64, expected: &str) -> Result<u16, E> {
    u16::try_from(v).map_err(|_| E::custom(format!("expected {expected}, found {v}")))
}

/// Text that holds a number was quoted by mistake: say so.
fn quoted_status<E: de::Error>(v: &str, expected: &str) -> E {
    if v.trim().parse::<u64>().is_ok() {
        E::custom(format!(
            "expected {expected}, found the text {v:?} (write the number without quotes)"
        ))
    } else {
        E::custom(format!("expected {expected}, found {v:?}"))
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(STATUS_SET)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSet, E> {
                status_code(v, STATUS_SET).map(StatusSet::One)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSet, E> {
                Err(E::custom(format!("expected {STATUS_SET}, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSet, E> {
                Err(quoted_status(v, STATUS_SET))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSet, A::Error> {
                let mut codes = Vec::new();
                while let Some(StatusCode(c)) = seq.next_element()? {
                    codes.push(c);
                }
                Ok(StatusSet::Many(codes))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of a `check.status` list.
struct StatusCode(u16);

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StatusCode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(STATUS)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusCode, E> {
                status_code(v, STATUS).map(StatusCode)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusCode, E> {
                Err(E::custom(format!("expected {STATUS}, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusCode, E> {
                Err(quoted_status(v, STATUS))
            }
        }
        d.deserialize_any(V)
    }
}

impl StatusSet {
    pub fn codes(&self) -> &[u16] {
        match self {
            StatusSet::One(c) => std::slice::from_ref(c),
            StatusSet::Many(v) => v,
        }
    }
}

/// What a step does: the field that is set (besides `think`, which every kind takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Request,
    Send,
    Expect,
    Listen,
    Command,
}

impl Action {
    pub fn field(self) -> &'static str {
        match self {
            Action::Request => "request",
            Action::Send => "send",
            Action::Expect => "expect",
            Action::Listen => "listen",
            Action::Command => "command",
        }
    }

    /// "`send`, `expect` and `think`": the steps a kind with `actions` takes, for messages.
    pub fn list(actions: &[Action]) -> String {
        let mut names: Vec<String> = actions.iter().map(|a| format!("`{}`", a.field())).collect();
        names.push("`think`".into());
        let last = names.pop().unwrap_or_default();
        if names.is_empty() {
            last
        } else {
            format!("{} and {last}", names.join(", "))
        }
    }
}

impl Step {
    /// The name a step without `name` reports under: `METHOD path` for a request, the action
    /// (`send`, `expect`, `listen`) otherwise; `None` for a think.
    pub fn default_name(&self) -> Option<String> {
        if let Some(r) = &self.request {
            return Some(format!("{} {}", r.method, r.path));
        }
        if let Some(c) = &self.command {
            return Some(
                c.first()
                    .map(|n| n.to_ascii_uppercase())
                    .unwrap_or_default(),
            );
        }
        self.actions().first().map(|a| a.field().to_string())
    }

    /// Fields set that belong to an action the step does not take (`pipeline` without
    /// `command`), with that action.
    pub fn stray_fields(&self) -> Vec<(&'static str, Action)> {
        let command = self.command.is_some();
        [
            ("pipeline", self.pipeline.is_some() && !command),
            ("timeout", self.timeout.is_some() && !command),
        ]
        .into_iter()
        .filter_map(|(f, stray)| stray.then_some((f, Action::Command)))
        .collect()
    }

    /// The actions set on this step, in field order.
    pub fn actions(&self) -> Vec<Action> {
        [
            (self.request.is_some(), Action::Request),
            (self.send.is_some(), Action::Send),
            (self.expect.is_some(), Action::Expect),
            (self.listen.is_some(), Action::Listen),
            (self.command.is_some(), Action::Command),
        ]
        .into_iter()
        .filter_map(|(set, a)| set.then_some(a))
        .collect()
    }
}

/// A payload's content, checked: what a `send` writes.
#[derive(Clone, Debug, PartialEq)]
pub enum PayloadBody<'a> {
    /// Text, which may hold templates.
    Text(&'a str),
    /// A JSON document whose strings may hold templates.
    Json(&'a serde_json::Value),
    /// Bytes, decoded from `base64`.
    Binary(Vec<u8>),
}

impl Payload {
    /// The content of the payload at `p`: exactly one of `text`, `json` or `base64` (which
    /// must decode).
    pub fn body(&self, p: &str) -> Result<PayloadBody<'_>, FieldError> {
        match (&self.text, &self.json, &self.base64) {
            (Some(t), None, None) => Ok(PayloadBody::Text(t)),
            (None, Some(j), None) => Ok(PayloadBody::Json(j)),
            (None, None, Some(b)) => parse_base64(b)
                .map(PayloadBody::Binary)
                .map_err(FieldError::at(format!("{p}.base64"))),
            _ => Err(FieldError::new(
                p,
                "set exactly one of `text`, `json` or `base64`",
            )),
        }
    }
}

impl Request {
    /// The method of the request at `p`, as written (upper-case).
    pub fn parsed_method(&self, p: &str) -> Result<&str, FieldError> {
        parse_method(&self.method).map_err(FieldError::at(format!("{p}.method")))
    }
}

impl Listen {
    /// Where the send time is in a pushed message, and nanoseconds per unit, for the listen
    /// at `p`.
    pub fn timestamp(&self, p: &str) -> Result<Option<(JsonPath, f64)>, FieldError> {
        let Some(tp) = &self.timestamp_path else {
            return Ok(None);
        };
        let path = parse_json_path(tp).map_err(FieldError::at(format!("{p}.timestampPath")))?;
        Ok(Some((
            path,
            self.timestamp_unit.unwrap_or_default().nanos(),
        )))
    }
}

/// Where an extracted value comes from, compiled.
#[derive(Clone, Debug)]
pub enum ExtractSource {
    /// The whole reply.
    Whole,
    JsonPath(JsonPath),
    /// The first capture group (or the whole match) of the body.
    Regex(regex::bytes::Regex),
    /// A response header, or the first capture group of `regex` in it.
    Header {
        name: String,
        regex: Option<regex::bytes::Regex>,
    },
}

impl Extract {
    /// Where the value extracted at `ep` (`….extract.<name>`) comes from: `reply`, a JSONPath,
    /// or exactly one of `jsonPath`, `regex`, `header` (optionally with `regex`) or `reply: N`.
    pub fn source(&self, ep: &str) -> Result<ExtractSource, FieldError> {
        let r = match self {
            Extract::JsonPath(jp) if jp == Extract::WHOLE => return Ok(ExtractSource::Whole),
            Extract::JsonPath(jp) => {
                return parse_json_path(jp)
                    .map(ExtractSource::JsonPath)
                    .map_err(FieldError::at(ep));
            }
            Extract::Rule(r) => r,
        };
        match (&r.json_path, &r.header, &r.regex, r.reply) {
            (Some(jp), None, None, None) => parse_json_path(jp)
                .map(ExtractSource::JsonPath)
                .map_err(FieldError::at(format!("{ep}.jsonPath"))),
            (None, header, Some(re), None) => {
                let re = parse_regex(re).map_err(FieldError::at(format!("{ep}.regex")))?;
                Ok(match header {
                    Some(h) => ExtractSource::Header {
                        name: h.clone(),
                        regex: Some(re),
                    },
                    None => ExtractSource::Regex(re),
                })
            }
            (None, Some(h), None, None) => Ok(ExtractSource::Header {
                name: h.clone(),
                regex: None,
            }),
            (None, None, None, Some(i)) => parse_json_path(&format!("$[{i}]"))
                .map(ExtractSource::JsonPath)
                .map_err(FieldError::at(format!("{ep}.reply"))),
            _ => Err(FieldError::new(
                ep,
                "set `jsonPath`, or `regex`, or `header` (optionally with `regex`), or `reply: N`",
            )),
        }
    }
}

impl Check {
    /// The `jsonPath` conditions of the check at `p`, compiled.
    pub fn parsed_json_paths(
        &self,
        p: &str,
    ) -> Result<Vec<(JsonPath, serde_json::Value)>, FieldError> {
        json_path_map(p, &self.json_path)
    }
}

impl Expect {
    /// The `regex` of the expect at `p`, compiled.
    pub fn parsed_regex(&self, p: &str) -> Result<Option<regex::bytes::Regex>, FieldError> {
        self.regex
            .as_deref()
            .map(|re| parse_regex(re).map_err(FieldError::at(format!("{p}.regex"))))
            .transpose()
    }

    /// The `base64` of the expect at `p`, decoded.
    pub fn parsed_base64(&self, p: &str) -> Result<Option<Vec<u8>>, FieldError> {
        self.base64
            .as_deref()
            .map(|b| parse_base64(b).map_err(FieldError::at(format!("{p}.base64"))))
            .transpose()
    }

    /// The `jsonPath` conditions of the expect at `p`, compiled.
    pub fn parsed_json_paths(
        &self,
        p: &str,
    ) -> Result<Vec<(JsonPath, serde_json::Value)>, FieldError> {
        json_path_map(p, &self.json_path)
    }

    /// The conditions that choose a WebSocket message, with whether each is set.
    pub fn matching(&self) -> [(&'static str, bool); 4] {
        [
            ("text", self.text.is_some()),
            ("contains", self.contains.is_some()),
            ("jsonPath", !self.json_path.is_empty()),
            ("base64", self.base64.is_some()),
        ]
    }
}
