//! The compiled scenario: every step resolved once at load into what the hot path needs —
//! pre-rendered request bytes where nothing varies, slot-resolved templates where something
//! does, compiled JSONPaths and regexes. Built once per test, shared read-only by workers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde_json_path::JsonPath;
use stampede_api::scenario::{Check, Extract, HttpConnection, Request, Scenario, Step};

use crate::data::DataSet;
use crate::template::{Escape, Names, RenderCtx, Tpl, compile_json};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct CompiledScenario {
    pub target: SocketAddr,
    pub connect_timeout: Duration,
    /// Names results are reported under; `CRequest::stat` indexes this.
    pub step_names: Vec<String>,
    pub on_start: Vec<CStep>,
    pub steps: Vec<CStep>,
    pub on_stop: Vec<CStep>,
    pub data: Vec<DataSet>,
    /// Slots for extracted values.
    pub extracted: Vec<String>,
}

#[derive(Debug)]
pub enum CStep {
    Think(Duration),
    Request(Box<CRequest>),
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

/// The bytes of a request.
#[derive(Debug)]
pub enum Wire {
    /// Nothing varies: written as is, no rendering at all.
    Static(Bytes),
    /// Head (request line and headers, without Content-Length) and body rendered per request.
    Dynamic { head: Tpl, body: Option<Tpl> },
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

pub fn compile(
    sc: &Scenario,
    data: Vec<DataSet>,
    target: SocketAddr,
) -> Result<CompiledScenario, CompileError> {
    let http = sc.connection.http.as_ref().ok_or_else(|| CompileError {
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
    let mut step_names = Vec::new();
    let mut list = |steps: &[Step], key: &str| -> Result<Vec<CStep>, CompileError> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                compile_step(
                    &format!("spec.scenario.{key}[{i}]"),
                    s,
                    http,
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
        target,
        connect_timeout: http
            .connect_timeout
            .map(|d| d.as_std())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        step_names,
        on_start,
        steps,
        on_stop,
        data: names.data,
        extracted: names.extracted,
    })
}

fn compile_step(
    p: &str,
    step: &Step,
    http: &HttpConnection,
    names: &Names,
    step_names: &mut Vec<String>,
) -> Result<CStep, CompileError> {
    if let Some(t) = step.think {
        return Ok(CStep::Think(t.as_std()));
    }
    let req = step.request.as_ref().ok_or_else(|| CompileError {
        path: p.into(),
        message: "a step is exactly one of `request` or `think`".into(),
    })?;
    let name = stampede_api::step_name(step).unwrap_or_default();
    let stat = match step_names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            step_names.push(name);
            step_names.len() - 1
        }
    };
    let rp = format!("{p}.request");
    let wire = compile_wire(&rp, req, http, names)?;
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
    let check = compile_check(&format!("{p}.check"), step.check.as_ref())?;
    let needs_json = !check.json.is_empty()
        || extract
            .iter()
            .any(|e| matches!(e.source, ExtractSource::JsonPath(_)));
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
    http: &HttpConnection,
    names: &Names,
) -> Result<Wire, CompileError> {
    let url = url::Url::parse(&http.url).map_err(|e| at(format!("{p}.url"))(e.to_string()))?;
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
        crate::template::escape_into(&mut key, k.as_bytes(), Escape::Query);
        head.push_str(std::str::from_utf8(&key).expect("form encoding is ASCII"));
        head.push_str("=");
        head.append(&Tpl::compile(v, Escape::Query, names).map_err(at(format!("{p}.query.{k}")))?);
    }
    head.push_str(" HTTP/1.1\r\nhost: ");
    head.push_str(&host);
    head.push_str("\r\n");

    // Request headers override connection headers, case-insensitively.
    let mut headers: Vec<(String, String, String)> = Vec::new();
    for (k, v) in &http.headers {
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
