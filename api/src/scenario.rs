//! Scenario types: the connection each virtual user opens and the steps it runs.
//! Pure data: no I/O. `///` comments are user documentation.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
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
    /// Steps are `request` and `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConnection>,
    /// HTTP/2: one connection per user; with `streams` above 1, that many users share each
    /// connection as concurrent streams. Steps are `request` and `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Http2Connection>,
    /// WebSocket: one connection per user, held for the whole test, with an optional
    /// heartbeat. Steps are `send`, `expect`, `listen` and `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketConnection>,
    /// Plain TCP (or TLS over TCP): one connection per user. Steps are `send`, `expect` and
    /// `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpConnection>,
    /// UDP: one socket per user. Steps are `send`, `expect` (a reply datagram) and `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpConnection>,
}

/// Which kind a `Connection` names, for messages and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionKind {
    Http,
    Http2,
    WebSocket,
    Tcp,
    Udp,
}

impl ConnectionKind {
    /// The field name in `spec.scenario.connection`.
    pub fn field(self) -> &'static str {
        match self {
            ConnectionKind::Http => "http",
            ConnectionKind::Http2 => "http2",
            ConnectionKind::WebSocket => "websocket",
            ConnectionKind::Tcp => "tcp",
            ConnectionKind::Udp => "udp",
        }
    }
}

impl Connection {
    /// The kinds set, in field order (valid when exactly one).
    pub fn kinds(&self) -> Vec<ConnectionKind> {
        [
            (self.http.is_some(), ConnectionKind::Http),
            (self.http2.is_some(), ConnectionKind::Http2),
            (self.websocket.is_some(), ConnectionKind::WebSocket),
            (self.tcp.is_some(), ConnectionKind::Tcp),
            (self.udp.is_some(), ConnectionKind::Udp),
        ]
        .into_iter()
        .filter_map(|(set, k)| set.then_some(k))
        .collect()
    }

    /// The one kind set, if exactly one is.
    pub fn kind(&self) -> Option<ConnectionKind> {
        match self.kinds().as_slice() {
            [k] => Some(*k),
            _ => None,
        }
    }

    /// Headers sent with every request or handshake (http, http2, websocket).
    pub fn headers(&self) -> Option<&BTreeMap<String, String>> {
        self.http
            .as_ref()
            .map(|h| &h.headers)
            .or(self.http2.as_ref().map(|h| &h.headers))
            .or(self.websocket.as_ref().map(|w| &w.headers))
    }

    /// The TLS block of the kind that is set, with the kind's field name (`http` …).
    pub fn tls(&self) -> Option<(&'static str, &Tls)> {
        let http = self.http.as_ref().and_then(|h| h.tls.as_ref());
        let http2 = self.http2.as_ref().and_then(|h| h.tls.as_ref());
        let websocket = self.websocket.as_ref().and_then(|w| w.tls.as_ref());
        let tcp = self.tcp.as_ref().and_then(|c| c.tls.as_ref());
        [
            ("http", http),
            ("http2", http2),
            ("websocket", websocket),
            ("tcp", tcp),
        ]
        .into_iter()
        .find_map(|(kind, t)| t.map(|t| (kind, t)))
    }
}

/// An HTTP connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnection {
    /// Base URL, e.g. `http://shop:8080` or `https://shop`. Request paths are appended to it.
    pub url: String,
    /// Protocol version: `http1`. For HTTP/2 use the `http2` connection kind.
    #[serde(default)]
    pub version: HttpVersion,
    /// How long opening the connection (TCP, and TLS for `https://`) may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request (a request's own headers override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// An HTTP/2 connection: cleartext with prior knowledge for `http://`, TLS with ALPN `h2` for
/// `https://`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2Connection {
    /// Base URL, e.g. `https://api:8443`. Request paths are appended to it.
    pub url: String,
    /// Concurrent streams per connection: each connection carries this many users, each with
    /// its own requests in flight. `connections` counts users, so a test opens
    /// about connections / streams connections (each worker thread of a runner rounds its own
    /// share up). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 1000)))]
    pub streams: Option<u32>,
    /// How long opening the connection may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request (a request's own headers override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A WebSocket connection (RFC 6455).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebSocketConnection {
    /// `ws://host:port/path` or `wss://…` (TLS). The query string is kept.
    pub url: String,
    /// Headers sent with the opening handshake, e.g. a cookie or `Authorization`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long opening the connection, handshake included, may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// A message (or ping) every user sends on a fixed interval while connected, as chat and
    /// live-room clients do to keep their connection alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// TLS settings for a `wss://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A WebSocket heartbeat: `text` or `ping`, every `every`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    /// The interval, e.g. `30s`.
    pub every: Duration,
    /// Send this text message, e.g. `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Send a WebSocket ping frame instead of a message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ping: bool,
}

/// A TCP connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpConnection {
    /// `host:port`, e.g. `10.0.0.5:7000` or `[::1]:7000`.
    pub address: String,
    /// How long opening the connection (and the TLS handshake) may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Speak TLS over the connection (present, even as `{}`, turns it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A UDP socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UdpConnection {
    /// `host:port` every datagram goes to.
    pub address: String,
}

/// TLS client settings (rustls; certificates are verified against the Mozilla root store).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Accept any certificate, unverified. Only for test targets with self-signed
    /// certificates: it removes all protection against impostors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// The name sent (SNI) and verified. Default: the host of the URL or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The certificate authorities to trust instead of the Mozilla roots (a private CA, or a
    /// test target's own certificate): PEM text, or a PEM file relative to the LoadTest
    /// file (files only where the runner can read them: `stampede run` and `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A client certificate chain for mutual TLS, PEM text or file as for `ca`; with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The private key of `cert` (PKCS#8, PKCS#1 or SEC1 PEM), text or file as for `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Tls {
    /// Whether `value` (of `ca`, `cert` or `key`) is PEM text rather than a file name.
    pub fn is_inline_pem(value: &str) -> bool {
        value.trim_start().starts_with("-----BEGIN ")
    }

    /// The fields that name files, with their field names: what a runner pod cannot read.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)]
            .into_iter()
            .filter_map(|(f, v)| v.as_deref().map(|v| (f, v)))
            .filter(|(_, v)| !Tls::is_inline_pem(v))
            .collect()
    }
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

/// Where an extracted value comes from: a JSONPath string (`$.token`), or one of
/// `jsonPath`, `regex` (first capture group of the body) or `header` (optionally with `regex`).
// Deserialized by hand: serde's untagged enums answer any mismatch with "data did not match
// any variant of untagged enum", naming neither the forms accepted nor what was found.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Extract {
    JsonPath(String),
    Rule(ExtractRule),
}

impl<'de> Deserialize<'de> for Extract {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Extract;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a JSONPath such as \"$.token\", or a map with jsonPath, header and/or regex",
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
