//! The compiled scenario: every step resolved once at load into what the hot path needs —
//! pre-rendered request bytes where nothing varies, slot-resolved templates where something
//! does, compiled JSONPaths and regexes. Built once per test, shared read-only by workers.

use std::time::Duration;

use bytes::Bytes;
use serde_json_path::JsonPath;
use stampede_api::scenario::{
    Check, Connection, ConnectionKind, Expect, Extract, Payload, Request, Scenario, Step,
};

use crate::engine::data::DataSet;
use crate::engine::template::{Escape, Names, RenderCtx, Tpl, compile_json};
use crate::protocol::net::Endpoint;
use crate::protocol::websocket::client::Heartbeat;
use crate::protocol::websocket::frame::Opcode;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct CompiledScenario {
    pub kind: CKind,
    pub endpoint: Endpoint,
    /// Names results are reported under; `CRequest::stat` indexes this.
    pub step_names: Vec<String>,
    pub on_start: Vec<CStep>,
    pub steps: Vec<CStep>,
    pub on_stop: Vec<CStep>,
    pub data: Vec<DataSet>,
    /// Slots for extracted values.
    pub extracted: Vec<String>,
    /// `spec.connectRate`: new connections per second for the whole test.
    pub connect_rate: Option<f64>,
    /// The whole test's peak users: a worker paces connects at its share of `connect_rate`.
    pub test_peak: u64,
}

/// The connection kind, with what opening one needs.
#[derive(Debug)]
pub enum CKind {
    Http1,
    Http2 {
        /// Users per connection.
        streams: u64,
        /// `scheme://authority` of every request URI.
        base: String,
    },
    WebSocket {
        /// The handshake request: request line and headers, each line ending in CRLF, without
        /// the key and the blank line.
        head: Tpl,
        heartbeat: Option<Heartbeat>,
    },
    Tcp,
    Udp,
}

impl CompiledScenario {
    /// The longest any one step may wait for its answer: the end-of-test drain lasts at least
    /// this long, so a request in flight at the end gets its own outcome (a reply or its
    /// timeout) rather than being cut off first.
    pub fn longest_timeout(&self) -> Duration {
        [&self.on_start, &self.steps, &self.on_stop]
            .into_iter()
            .flatten()
            .filter_map(CStep::timeout)
            .max()
            .unwrap_or_default()
    }
}

impl CKind {
    /// Its users hold their connection through pauses and between iterations, and reconnect
    /// when it drops, as chat and device clients do; the others connect when a step needs it.
    pub fn holds_connection(&self) -> bool {
        matches!(self, CKind::WebSocket { .. } | CKind::Tcp)
    }
}

#[derive(Debug)]
pub enum CStep {
    Think(Duration),
    Request(Box<CRequest>),
    Message(Box<CMessage>),
    Listen(Box<CListen>),
}

impl CStep {
    /// The results slot of a step that sends and waits for an answer (requests and
    /// send/expect messages): what is in flight while it runs.
    pub fn awaited_stat(&self) -> Option<usize> {
        match self {
            CStep::Request(r) => Some(r.stat),
            CStep::Message(m) => Some(m.stat),
            CStep::Think(_) | CStep::Listen(_) => None,
        }
    }

    /// How long the step may wait for its answer.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            CStep::Request(r) => Some(r.timeout),
            CStep::Message(m) => m.expect.as_ref().map(|e| e.timeout),
            CStep::Think(_) | CStep::Listen(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct CRequest {
    pub stat: usize,
    /// A HEAD response has headers but no body, whatever Content-Length says.
    pub is_head: bool,
    pub wire: Wire,
    pub timeout: Duration,
    pub extract: Vec<CExtract>,
    pub check: CCheck,
    /// Whether extract or check reads the body as JSON.
    pub needs_json: bool,
}

/// A request over HTTP/2: its parts, rendered per request.
#[derive(Debug)]
pub struct H2Request {
    pub method: hyper::Method,
    /// Path and query, after the base URL's path.
    pub path: Tpl,
    pub headers: Vec<(hyper::header::HeaderName, Tpl)>,
    pub body: Option<Tpl>,
}

/// A `send` and/or `expect` step (websocket, tcp, udp).
#[derive(Debug)]
pub struct CMessage {
    pub stat: usize,
    pub send: Option<CPayload>,
    pub expect: Option<CExpect>,
    pub extract: Vec<CExtract>,
    pub check: CCheck,
    pub needs_json: bool,
}

#[derive(Debug)]
pub struct CPayload {
    /// Text or Binary (WebSocket); on TCP and UDP only the bytes count.
    pub opcode: Opcode,
    pub body: Tpl,
}

#[derive(Debug)]
pub struct CExpect {
    pub timeout: Duration,
    /// WebSocket: which message to wait for.
    pub matcher: Matcher,
    /// TCP: where a reply ends.
    pub framing: Framing,
}

/// Conditions a WebSocket message must meet to be the one a step waits for.
#[derive(Debug, Default)]
pub struct Matcher {
    pub text: Option<Vec<u8>>,
    pub contains: Option<memchr::memmem::Finder<'static>>,
    pub json: Vec<(JsonPath, serde_json::Value)>,
    pub regex: Option<regex::bytes::Regex>,
    pub binary: Option<Vec<u8>>,
}

impl Matcher {
    pub fn needs_json(&self) -> bool {
        !self.json.is_empty()
    }

    /// Whether a message matches; `json` is its parse when `needs_json`.
    pub fn matches(
        &self,
        opcode: Opcode,
        payload: &[u8],
        json: Option<&serde_json::Value>,
    ) -> bool {
        self.text
            .as_ref()
            .is_none_or(|t| opcode == Opcode::Text && payload == t.as_slice())
            && self
                .binary
                .as_ref()
                .is_none_or(|b| opcode == Opcode::Binary && payload == b.as_slice())
            && self
                .contains
                .as_ref()
                .is_none_or(|f| f.find(payload).is_some())
            && self.regex.as_ref().is_none_or(|r| r.is_match(payload))
            && self.json.iter().all(|(path, want)| {
                json.and_then(|j| path.query(j).first().cloned()).as_ref() == Some(want)
            })
    }
}

/// Where a TCP reply ends.
#[derive(Debug)]
pub enum Framing {
    /// WebSocket messages and UDP datagrams frame themselves.
    Message,
    Delimiter(Box<memchr::memmem::Finder<'static>>),
    LengthPrefix(u8),
    Regex(regex::bytes::Regex),
}

#[derive(Debug)]
pub struct CListen {
    pub stat: usize,
    pub duration: Duration,
    /// Where the send time is, and nanoseconds per unit.
    pub timestamp: Option<(JsonPath, f64)>,
}

/// The bytes of a request.
#[derive(Debug)]
pub enum Wire {
    /// Nothing varies: written as is, no rendering at all.
    Static(Bytes),
    /// Head (request line and headers, without Content-Length) and body rendered per request.
    Dynamic { head: Tpl, body: Option<Tpl> },
    /// HTTP/2: rendered into a `Request` per request.
    H2(Box<H2Request>),
}

impl Wire {
    /// Renders the request into `out` (cleared first); `scratch` holds the body meanwhile.
    pub fn render<'a>(
        &'a self,
        out: &'a mut Vec<u8>,
        scratch: &mut Vec<u8>,
        cx: &RenderCtx,
    ) -> &'a [u8] {
        match self {
            Wire::Static(b) => b,
            Wire::H2(_) => &[],
            Wire::Dynamic { head, body } => {
                out.clear();
                head.render(out, cx);
                if let Some(body) = body {
                    scratch.clear();
                    body.render(scratch, cx);
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(scratch.len()).as_bytes());
                    out.extend_from_slice(b"\r\n\r\n");
                    out.extend_from_slice(scratch);
                } else {
                    out.extend_from_slice(b"\r\n");
                }
                out
            }
        }
    }
}

#[derive(Debug)]
pub struct CExtract {
    pub slot: usize,
    pub source: ExtractSource,
}

#[derive(Debug)]
pub enum ExtractSource {
    JsonPath(JsonPath),
    Regex(regex::bytes::Regex),
    Header {
        name: String,
        regex: Option<regex::bytes::Regex>,
    },
}

#[derive(Debug, Default)]
pub struct CCheck {
    pub status: Option<Vec<u16>>,
    pub body_contains: Option<memchr::memmem::Finder<'static>>,
    pub json: Vec<(JsonPath, serde_json::Value)>,
    pub max_latency: Option<Duration>,
}

impl CCheck {
    pub fn count(&self) -> usize {
        usize::from(self.status.is_some())
            + usize::from(self.body_contains.is_some())
            + self.json.len()
            + usize::from(self.max_latency.is_some())
    }
}

/// A compile error with the path of the field at fault.
#[derive(Debug)]
pub struct CompileError {
    pub path: String,
    pub message: String,
}

fn at(path: impl Into<String>) -> impl FnOnce(String) -> CompileError {
    let path = path.into();
    move |message| CompileError { path, message }
}

/// Where the connection kind's options are, for error paths.
fn conn_path(kind: ConnectionKind) -> String {
    format!("spec.scenario.connection.{}", kind.field())
}

pub fn compile(
    sc: &Scenario,
    data: Vec<DataSet>,
    endpoint: Endpoint,
    connect_rate: Option<f64>,
    test_peak: u64,
) -> Result<CompiledScenario, CompileError> {
    let kind = sc.connection.kind().ok_or_else(|| CompileError {
        path: "spec.scenario.connection".into(),
        message: "set exactly one connection kind".into(),
    })?;
    let mut extracted: Vec<String> = Vec::new();
    for s in sc.on_start.iter().chain(&sc.steps).chain(&sc.on_stop) {
        for k in s.extract.keys() {
            if !extracted.contains(k) {
                extracted.push(k.clone());
            }
        }
    }
    let names = Names {
        variables: sc
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        extracted,
        data,
    };
    let ckind = compile_kind(&sc.connection, kind, &names)?;
    let mut step_names = Vec::new();
    let mut list = |steps: &[Step], key: &str| -> Result<Vec<CStep>, CompileError> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                compile_step(
                    &format!("spec.scenario.{key}[{i}]"),
                    s,
                    &sc.connection,
                    &names,
                    &mut step_names,
                )
            })
            .collect()
    };
    let on_start = list(&sc.on_start, "onStart")?;
    let steps = list(&sc.steps, "steps")?;
    let on_stop = list(&sc.on_stop, "onStop")?;
    Ok(CompiledScenario {
        kind: ckind,
        endpoint,
        step_names,
        on_start,
        steps,
        on_stop,
        data: names.data,
        extracted: names.extracted,
        connect_rate,
        test_peak,
    })
}

/// `host[:port]` as a Host header or authority carries it.
fn authority(url: &url::Url, p: &str) -> Result<String, CompileError> {
    match (url.host_str(), url.port()) {
        (Some(h), Some(port)) => Ok(format!("{h}:{port}")),
        (Some(h), None) => Ok(h.to_string()),
        (None, _) => Err(at(format!("{p}.url"))("the URL needs a host".into())),
    }
}

fn compile_kind(
    c: &Connection,
    kind: ConnectionKind,
    names: &Names,
) -> Result<CKind, CompileError> {
    let p = conn_path(kind);
    Ok(match kind {
        ConnectionKind::Http => CKind::Http1,
        ConnectionKind::Http2 => {
            let h = c.http2.as_ref().expect("kind says set");
            let url = url::Url::parse(&h.url).map_err(|e| at(format!("{p}.url"))(e.to_string()))?;
            CKind::Http2 {
                streams: u64::from(h.streams.unwrap_or(1).max(1)),
                base: format!("{}://{}", url.scheme(), authority(&url, &p)?),
            }
        }
        ConnectionKind::WebSocket => {
            let w = c.websocket.as_ref().expect("kind says set");
            let url = url::Url::parse(&w.url).map_err(|e| at(format!("{p}.url"))(e.to_string()))?;
            let mut head = Tpl::default();
            head.push_str("GET ");
            head.push_str(url.path());
            if let Some(q) = url.query() {
                head.push_str("?");
                head.push_str(q);
            }
            head.push_str(" HTTP/1.1\r\nhost: ");
            head.push_str(&authority(&url, &p)?);
            head.push_str(
                "\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n",
            );
            if !w
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("user-agent"))
            {
                head.push_str(concat!(
                    "user-agent: stampede/",
                    env!("CARGO_PKG_VERSION"),
                    "\r\n"
                ));
            }
            for (k, v) in &w.headers {
                head.push_str(&k.to_ascii_lowercase());
                head.push_str(": ");
                head.append(
                    &Tpl::compile(v, Escape::Header, names)
                        .map_err(at(format!("{p}.headers.{k}")))?,
                );
                head.push_str("\r\n");
            }
            let heartbeat = w.heartbeat.as_ref().map(|h| Heartbeat {
                every: h.every.as_std(),
                opcode: if h.ping { Opcode::Ping } else { Opcode::Text },
                payload: h.text.clone().unwrap_or_default().into_bytes(),
            });
            CKind::WebSocket { head, heartbeat }
        }
        ConnectionKind::Tcp => CKind::Tcp,
        ConnectionKind::Udp => CKind::Udp,
    })
}

fn stat_of(step: &Step, step_names: &mut Vec<String>) -> usize {
    let name = stampede_api::step_name(step).unwrap_or_default();
    match step_names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            step_names.push(name);
            step_names.len() - 1
        }
    }
}

fn compile_extract(p: &str, step: &Step, names: &Names) -> Result<Vec<CExtract>, CompileError> {
    let mut extract = Vec::new();
    for (k, rule) in &step.extract {
        let ep = format!("{p}.extract.{k}");
        let slot = names
            .extracted
            .iter()
            .position(|n| n == k)
            .expect("collected above");
        let source = match rule {
            Extract::JsonPath(jp) => ExtractSource::JsonPath(json_path(&ep, jp)?),
            Extract::Rule(r) => match (&r.json_path, &r.header, &r.regex) {
                (Some(jp), None, None) => {
                    ExtractSource::JsonPath(json_path(&format!("{ep}.jsonPath"), jp)?)
                }
                (None, Some(h), re) => ExtractSource::Header {
                    name: h.clone(),
                    regex: re
                        .as_deref()
                        .map(|re| regex(&format!("{ep}.regex"), re))
                        .transpose()?,
                },
                (None, None, Some(re)) => ExtractSource::Regex(regex(&format!("{ep}.regex"), re)?),
                _ => return Err(at(ep)("set `jsonPath`, or `regex`, or `header`".into())),
            },
        };
        extract.push(CExtract { slot, source });
    }
    Ok(extract)
}

fn compile_step(
    p: &str,
    step: &Step,
    conn: &Connection,
    names: &Names,
    step_names: &mut Vec<String>,
) -> Result<CStep, CompileError> {
    if let Some(t) = step.think {
        return Ok(CStep::Think(t.as_std()));
    }
    if let Some(l) = &step.listen {
        let timestamp = l
            .timestamp_path
            .as_deref()
            .map(|tp| json_path(&format!("{p}.listen.timestampPath"), tp))
            .transpose()?
            .map(|jp| (jp, l.timestamp_unit.unwrap_or_default().nanos()));
        return Ok(CStep::Listen(Box::new(CListen {
            stat: stat_of(step, step_names),
            duration: l.duration.as_std(),
            timestamp,
        })));
    }
    let extract = compile_extract(p, step, names)?;
    let check = compile_check(&format!("{p}.check"), step.check.as_ref())?;
    let json_extract = extract
        .iter()
        .any(|e| matches!(e.source, ExtractSource::JsonPath(_)));
    if step.send.is_some() || step.expect.is_some() {
        let send = step
            .send
            .as_ref()
            .map(|m| compile_payload(&format!("{p}.send"), m, names))
            .transpose()?;
        let expect = step
            .expect
            .as_ref()
            .map(|e| compile_expect(&format!("{p}.expect"), e, conn))
            .transpose()?;
        let needs_json = json_extract
            || !check.json.is_empty()
            || expect.as_ref().is_some_and(|e| e.matcher.needs_json());
        return Ok(CStep::Message(Box::new(CMessage {
            stat: stat_of(step, step_names),
            send,
            expect,
            extract,
            check,
            needs_json,
        })));
    }
    let req = step.request.as_ref().ok_or_else(|| CompileError {
        path: p.into(),
        message: "a step is exactly one of `request`, `send`, `expect`, `listen` or `think`".into(),
    })?;
    let stat = stat_of(step, step_names);
    let rp = format!("{p}.request");
    let wire = match (&conn.http, &conn.http2) {
        (Some(h), _) => compile_wire(&rp, req, &h.url, &h.headers, names)?,
        (None, Some(h)) => Wire::H2(Box::new(compile_h2(&rp, req, &h.url, &h.headers, names)?)),
        (None, None) => {
            return Err(at(rp)("a request needs an http or http2 connection".into()));
        }
    };
    let needs_json = !check.json.is_empty() || json_extract;
    Ok(CStep::Request(Box::new(CRequest {
        stat,
        is_head: req.method == "HEAD",
        wire,
        timeout: req.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT),
        extract,
        check,
        needs_json,
    })))
}

fn compile_payload(p: &str, m: &Payload, names: &Names) -> Result<CPayload, CompileError> {
    Ok(match (&m.text, &m.json, &m.base64) {
        (Some(t), _, _) => CPayload {
            opcode: Opcode::Text,
            body: Tpl::compile(t, Escape::Raw, names).map_err(at(format!("{p}.text")))?,
        },
        (None, Some(j), _) => CPayload {
            opcode: Opcode::Text,
            body: compile_json(j, names).map_err(at(format!("{p}.json")))?,
        },
        (None, None, Some(b)) => CPayload {
            opcode: Opcode::Binary,
            body: Tpl::literal(
                &stampede_api::base64_decode(b)
                    .ok_or_else(|| at(format!("{p}.base64"))("not valid base64".into()))?,
            ),
        },
        (None, None, None) => {
            return Err(at(p)(
                "set exactly one of `text`, `json` or `base64`".into(),
            ));
        }
    })
}

fn compile_expect(p: &str, e: &Expect, conn: &Connection) -> Result<CExpect, CompileError> {
    let mut json = Vec::new();
    for (k, v) in &e.json_path {
        json.push((json_path(&format!("{p}.jsonPath.{k}"), k)?, v.clone()));
    }
    let re = e
        .regex
        .as_deref()
        .map(|r| regex(&format!("{p}.regex"), r))
        .transpose()?;
    let tcp = conn.tcp.is_some();
    let framing = match (tcp, &e.delimiter, e.length_prefix, &re) {
        (false, ..) => Framing::Message,
        (true, Some(d), _, _) => Framing::Delimiter(Box::new(
            memchr::memmem::Finder::new(d.as_bytes()).into_owned(),
        )),
        (true, None, Some(n), _) => Framing::LengthPrefix(n),
        (true, None, None, Some(r)) => Framing::Regex(r.clone()),
        (true, None, None, None) => {
            return Err(at(p)(
                "a tcp reply needs `delimiter`, `lengthPrefix` or `regex`".into(),
            ));
        }
    };
    let matcher = Matcher {
        text: e.text.as_ref().map(|t| t.as_bytes().to_vec()),
        contains: e
            .contains
            .as_ref()
            .map(|c| memchr::memmem::Finder::new(c.as_bytes()).into_owned()),
        json,
        regex: if tcp { None } else { re },
        binary: e
            .base64
            .as_deref()
            .map(|b| {
                stampede_api::base64_decode(b)
                    .ok_or_else(|| at(format!("{p}.base64"))("not valid base64".into()))
            })
            .transpose()?,
    };
    Ok(CExpect {
        timeout: e.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT),
        matcher,
        framing,
    })
}

fn compile_h2(
    p: &str,
    req: &Request,
    base_url: &str,
    conn_headers: &std::collections::BTreeMap<String, String>,
    names: &Names,
) -> Result<H2Request, CompileError> {
    let url = url::Url::parse(base_url).map_err(|e| at(format!("{p}.url"))(e.to_string()))?;
    let method = hyper::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| at(format!("{p}.method"))(format!("{:?} is not a method", req.method)))?;
    let mut path = Tpl::default();
    path.push_str(url.path().trim_end_matches('/'));
    path.append(&Tpl::compile(&req.path, Escape::Path, names).map_err(at(format!("{p}.path")))?);
    let mut sep = if req.path.contains('?') { "&" } else { "?" };
    for (k, v) in &req.query {
        path.push_str(sep);
        sep = "&";
        let mut key = Vec::new();
        crate::engine::template::escape_into(&mut key, k.as_bytes(), Escape::Query);
        path.push_str(std::str::from_utf8(&key).expect("form encoding is ASCII"));
        path.push_str("=");
        path.append(&Tpl::compile(v, Escape::Query, names).map_err(at(format!("{p}.query.{k}")))?);
    }
    let mut merged: Vec<(String, String, String)> = Vec::new();
    for (k, v) in conn_headers {
        merged.push((
            k.to_ascii_lowercase(),
            v.clone(),
            format!("spec.scenario.connection.http2.headers.{k}"),
        ));
    }
    for (k, v) in &req.headers {
        merged.retain(|(n, _, _)| *n != k.to_ascii_lowercase());
        merged.push((
            k.to_ascii_lowercase(),
            v.clone(),
            format!("{p}.headers.{k}"),
        ));
    }
    let mut headers = Vec::new();
    if !merged.iter().any(|(k, _, _)| k == "user-agent") {
        headers.push((
            hyper::header::USER_AGENT,
            Tpl::literal(concat!("stampede/", env!("CARGO_PKG_VERSION")).as_bytes()),
        ));
    }
    if req.json.is_some() && !merged.iter().any(|(k, _, _)| k == "content-type") {
        headers.push((
            hyper::header::CONTENT_TYPE,
            Tpl::literal(b"application/json"),
        ));
    }
    for (k, v, hp) in &merged {
        // HTTP/2 carries these in its own framing, and forbids connection-specific headers.
        if matches!(
            k.as_str(),
            "host"
                | "content-length"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "upgrade"
        ) {
            continue;
        }
        let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| at(hp.clone())(format!("{k:?} is not a header name")))?;
        headers.push((
            name,
            Tpl::compile(v, Escape::Header, names).map_err(at(hp.clone()))?,
        ));
    }
    let body = match (&req.body, &req.json) {
        (Some(b), _) => Some(Tpl::compile(b, Escape::Raw, names).map_err(at(format!("{p}.body")))?),
        (None, Some(j)) => Some(compile_json(j, names).map_err(at(format!("{p}.json")))?),
        (None, None) => None,
    };
    Ok(H2Request {
        method,
        path,
        headers,
        body,
    })
}

fn json_path(p: &str, src: &str) -> Result<JsonPath, CompileError> {
    JsonPath::parse(src).map_err(|e| at(p)(format!("not a JSONPath: {e}")))
}

fn regex(p: &str, src: &str) -> Result<regex::bytes::Regex, CompileError> {
    regex::bytes::Regex::new(src).map_err(|e| at(p)(format!("not a regular expression: {e}")))
}

fn compile_check(p: &str, c: Option<&Check>) -> Result<CCheck, CompileError> {
    let Some(c) = c else {
        return Ok(CCheck::default());
    };
    let mut json = Vec::new();
    for (k, v) in &c.json_path {
        json.push((json_path(&format!("{p}.jsonPath.{k}"), k)?, v.clone()));
    }
    Ok(CCheck {
        status: c.status.as_ref().map(|s| s.codes().to_vec()),
        body_contains: c
            .body_contains
            .as_ref()
            .map(|s| memchr::memmem::Finder::new(s.as_bytes()).into_owned()),
        json,
        max_latency: c.max_latency.map(|d| d.as_std()),
    })
}

fn compile_wire(
    p: &str,
    req: &Request,
    base_url: &str,
    conn_headers: &std::collections::BTreeMap<String, String>,
    names: &Names,
) -> Result<Wire, CompileError> {
    let url = url::Url::parse(base_url).map_err(|e| at(format!("{p}.url"))(e.to_string()))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(port)) => format!("{h}:{port}"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            return Err(at("spec.scenario.connection.http.url")(
                "the URL needs a host".into(),
            ));
        }
    };
    let base = url.path().trim_end_matches('/');

    let mut head = Tpl::default();
    head.push_str(&req.method);
    head.push_str(" ");
    head.push_str(base);
    head.append(&Tpl::compile(&req.path, Escape::Path, names).map_err(at(format!("{p}.path")))?);
    let mut sep = if req.path.contains('?') { "&" } else { "?" };
    for (k, v) in &req.query {
        head.push_str(sep);
        sep = "&";
        let mut key = Vec::new();
        crate::engine::template::escape_into(&mut key, k.as_bytes(), Escape::Query);
        head.push_str(std::str::from_utf8(&key).expect("form encoding is ASCII"));
        head.push_str("=");
        head.append(&Tpl::compile(v, Escape::Query, names).map_err(at(format!("{p}.query.{k}")))?);
    }
    head.push_str(" HTTP/1.1\r\nhost: ");
    head.push_str(&host);
    head.push_str("\r\n");

    // Request headers override connection headers, case-insensitively.
    let mut headers: Vec<(String, String, String)> = Vec::new();
    for (k, v) in conn_headers {
        headers.push((
            k.to_ascii_lowercase(),
            v.clone(),
            format!("spec.scenario.connection.http.headers.{k}"),
        ));
    }
    for (k, v) in &req.headers {
        headers.retain(|(n, _, _)| *n != k.to_ascii_lowercase());
        headers.push((
            k.to_ascii_lowercase(),
            v.clone(),
            format!("{p}.headers.{k}"),
        ));
    }
    let has = |n: &str| headers.iter().any(|(k, _, _)| k == n);
    if !has("user-agent") {
        head.push_str(concat!(
            "user-agent: stampede/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if req.json.is_some() && !has("content-type") {
        head.push_str("content-type: application/json\r\n");
    }
    for (k, v, path) in &headers {
        if k == "content-length" || k == "host" {
            continue;
        }
        head.push_str(k);
        head.push_str(": ");
        head.append(&Tpl::compile(v, Escape::Header, names).map_err(at(path.clone()))?);
        head.push_str("\r\n");
    }
    let body = match (&req.body, &req.json) {
        (Some(b), _) => Some(Tpl::compile(b, Escape::Raw, names).map_err(at(format!("{p}.body")))?),
        (None, Some(j)) => Some(compile_json(j, names).map_err(at(format!("{p}.json")))?),
        (None, None) => None,
    };
    let wire = Wire::Dynamic { head, body };
    if let Wire::Dynamic { head, body } = &wire
        && head.is_static()
        && body.as_ref().is_none_or(Tpl::is_static)
    {
        let cx = RenderCtx {
            vu_id: 0,
            iteration: 0,
            vars: &[],
            rows: &[],
            data: &[],
        };
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let bytes = Bytes::copy_from_slice(wire.render(&mut out, &mut scratch, &cx));
        return Ok(Wire::Static(bytes));
    }
    Ok(wire)
}
