//! Scenario types: the connection each virtual user opens and the steps it runs.
//! Pure data: no I/O. `///` comments are user documentation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// What each virtual user does: open a connection, run `onStart` once, loop over `steps`,
/// run `onStop` when it is retired.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// The connection every user owns. Exactly one kind.
    pub connection: Connection,
    /// Constant values usable in templates as `{{ name }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Data sets usable in templates as `{{ set.column }}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataSource>,
    /// Steps run once per user after it connects (log in, subscribe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_start: Vec<Step>,
    /// One iteration.
    pub steps: Vec<Step>,
    /// Steps run once when the user is retired or the test ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_stop: Vec<Step>,
}

/// The kind of connection each user opens. Set exactly one field.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    /// HTTP/1.1 with keep-alive: one TCP connection per user, reused for every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConnection>,
}

/// An HTTP connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnection {
    /// Base URL, e.g. `http://shop:8080`. Request paths are appended to it.
    pub url: String,
    /// Protocol version. Only `http1` for now.
    #[serde(default)]
    pub version: HttpVersion,
    /// How long opening the TCP connection may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request (a request's own headers override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// HTTP protocol version.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    #[default]
    Http1,
}

/// A data set whose rows feed templates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSource {
    /// The name templates use: `{{ name.column }}`.
    pub name: String,
    /// Rows written inline: each row maps column names to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<BTreeMap<String, String>>>,
    /// Rows read from a CSV file whose first line names the columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvSource>,
    /// How rows are picked: `sequential` (each iteration takes the next row, wrapping),
    /// `random` (each iteration takes any row), `unique` (each user keeps one row of its own).
    #[serde(default)]
    pub pick: Pick,
}

/// Where CSV rows come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsvSource {
    /// Path of the CSV file, relative to the LoadTest file.
    pub file: String,
}

/// How rows of a data set are handed out.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    #[default]
    Sequential,
    Random,
    Unique,
}

/// One step: either a `request` or a `think` pause.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// The name results are reported under. Defaults to `METHOD path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An HTTP request over the user's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// A pause before the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Duration>,
    /// Values taken from the response, usable by later steps as `{{ name }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extract: BTreeMap<String, Extract>,
    /// Conditions the response must meet. A failed check is counted, never fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
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

/// Where an extracted value comes from: a JSONPath string (`$.token`), or one of
/// `jsonPath`, `regex` (first capture group of the body) or `header` (optionally with `regex`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Extract {
    JsonPath(String),
    Rule(ExtractRule),
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
}

/// One status code or a list of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

impl StatusSet {
    pub fn codes(&self) -> &[u16] {
        match self {
            StatusSet::One(c) => std::slice::from_ref(c),
            StatusSet::Many(v) => v,
        }
    }
}
