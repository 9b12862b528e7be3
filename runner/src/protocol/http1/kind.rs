//! HTTP/1.1 as a connection kind: `request` steps compiled to pre-rendered bytes where nothing
//! varies (a template per request where something does), sent on the user's keep-alive
//! connection and judged by the step's rules.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use stampede_api::FieldError;
use stampede_api::scenario::{HttpConnection, Request, Step};
use stampede_api::validate::fields::header;
use tokio::time::Instant;

use crate::protocol::http1::{self, Conn};
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::reply::Rules;
use crate::script::template::{Escape, Names, RenderCtx, Tpl, compile_json, escape_into};
use crate::stats::Outcome;

/// How long a request waits for its response unless the step says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Http1 {
    url: url::Url,
    headers: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct HttpStep {
    pub stat: usize,
    /// A HEAD response has headers but no body, whatever Content-Length says.
    pub is_head: bool,
    pub wire: Wire,
    pub timeout: Duration,
    pub rules: Rules,
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

impl Protocol for Http1 {
    type Options = HttpConnection;
    type Conn = Conn;
    type Step = HttpStep;
    type Local = ();

    fn compile(o: &HttpConnection, p: &str, _: &Names) -> Result<Http1, FieldError> {
        let url = o.parsed_url().map_err(FieldError::at(format!("{p}.url")))?;
        Ok(Http1 {
            url,
            headers: o.headers.clone(),
        })
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(HttpStep, StepMeta), FieldError> {
        let req = request_of(p, step)?;
        let rp = format!("{p}.request");
        let wire = compile_wire(&rp, req, &self.url, &self.headers, names)?;
        let timeout = req.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT);
        Ok((
            HttpStep {
                stat: common.stat,
                is_head: req.method == "HEAD",
                wire,
                timeout,
                rules: common.rules,
            },
            StepMeta {
                answers: 1,
                timeout: Some(timeout),
            },
        ))
    }

    async fn connect(&self, _: &(), io: &mut Io<'_>) -> Result<Conn, Outcome> {
        io.endpoint.connect(io.id).await.map(Conn::new)
    }

    async fn step(&self, _: &(), conn: &mut Conn, r: &HttpStep, io: &mut Io<'_>) -> StepEnd {
        let (cx, out, buf) = io.split();
        let bytes = r.wire.render(out, buf, &cx);
        let sent = bytes.len() as u64;
        let sent_at = Instant::now();
        let res = tokio::time::timeout(r.timeout, conn.exchange(bytes, r.is_head)).await;
        let done = Instant::now();
        let resp = match res {
            Err(_) => Err(http1::Failure::from(Outcome::Timeout)),
            Ok(res) => res,
        };
        match resp {
            // The server dropped an idle keep-alive connection: reconnect and resend once.
            Err(f) if f.stale && !io.retry => StepEnd::Stale,
            Err(f) => {
                io.record(r.stat, Record::failed(f.outcome, sent));
                StepEnd::Broken
            }
            Ok(resp) => {
                let head = conn.head(&resp);
                let v = r.rules.judge_body(
                    io.vars,
                    conn.body(&resp),
                    Some(resp.status),
                    &|name| http1::header(head, name),
                    done - sent_at,
                );
                io.record_reply(r.stat, v, sent, resp.received, sent_at, done);
                if resp.keep_alive {
                    StepEnd::Next
                } else {
                    StepEnd::NextOnNewConnection
                }
            }
        }
    }

    async fn shutdown(&self, conn: Conn) {
        conn.shutdown().await;
    }
}

/// The step's `request`. The engine asked the api whether the kind takes the step's actions,
/// so a step here without one is a bug, reported at the step.
pub fn request_of<'s>(p: &str, step: &'s Step) -> Result<&'s Request, FieldError> {
    step.request
        .as_ref()
        .ok_or_else(|| FieldError::new(p, "not a `request` step"))
}

/// `host[:port]` as a Host header or authority carries it, of a URL the api parsed (which
/// has a host).
pub fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The request's path and query after the base URL's path, as a template.
pub fn path_and_query(
    p: &str,
    req: &Request,
    base: &url::Url,
    names: &Names,
) -> Result<Tpl, FieldError> {
    let mut path = Tpl::default();
    path.push_str(base.path().trim_end_matches('/'));
    path.append(
        &Tpl::compile(&req.path, Escape::Path, names)
            .map_err(FieldError::at(format!("{p}.path")))?,
    );
    let mut sep = if req.path.contains('?') { "&" } else { "?" };
    for (k, v) in &req.query {
        path.push_str(sep);
        sep = "&";
        let mut key = Vec::new();
        escape_into(&mut key, k.as_bytes(), Escape::Query);
        path.push_str(&String::from_utf8_lossy(&key));
        path.push_str("=");
        path.append(
            &Tpl::compile(v, Escape::Query, names)
                .map_err(FieldError::at(format!("{p}.query.{k}")))?,
        );
    }
    Ok(path)
}

/// Connection headers overridden by the request's own, case-insensitively: (lower-case
/// name, value, the field it came from). Each is checked by the api's rule for headers.
pub fn merged_headers(
    p: &str,
    conn_field: &str,
    conn_headers: &BTreeMap<String, String>,
    req: &Request,
) -> Result<Vec<(String, String, String)>, FieldError> {
    let mut merged: Vec<(String, String, String)> = Vec::new();
    for (k, v) in conn_headers {
        let hp = format!("spec.scenario.connection.{conn_field}.headers.{k}");
        header(&hp, k, v)?;
        merged.push((k.to_ascii_lowercase(), v.clone(), hp));
    }
    for (k, v) in &req.headers {
        let hp = format!("{p}.headers.{k}");
        header(&hp, k, v)?;
        merged.retain(|(n, _, _)| *n != k.to_ascii_lowercase());
        merged.push((k.to_ascii_lowercase(), v.clone(), hp));
    }
    Ok(merged)
}

/// The request body as a template (`body` or `json`), if it has one.
pub fn body_of(p: &str, req: &Request, names: &Names) -> Result<Option<Tpl>, FieldError> {
    Ok(match (&req.body, &req.json) {
        (Some(b), _) => {
            Some(Tpl::compile(b, Escape::Raw, names).map_err(FieldError::at(format!("{p}.body")))?)
        }
        (None, Some(j)) => {
            Some(compile_json(j, names).map_err(FieldError::at(format!("{p}.json")))?)
        }
        (None, None) => None,
    })
}

fn compile_wire(
    p: &str,
    req: &Request,
    url: &url::Url,
    conn_headers: &BTreeMap<String, String>,
    names: &Names,
) -> Result<Wire, FieldError> {
    let host = authority(url);
    let mut head = Tpl::default();
    head.push_str(req.parsed_method(p)?);
    head.push_str(" ");
    head.append(&path_and_query(p, req, url, names)?);
    head.push_str(" HTTP/1.1\r\nhost: ");
    head.push_str(&host);
    head.push_str("\r\n");
    let headers = merged_headers(p, "http", conn_headers, req)?;
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
        head.append(&Tpl::compile(v, Escape::Header, names).map_err(FieldError::at(path.clone()))?);
        head.push_str("\r\n");
    }
    let body = body_of(p, req, names)?;
    if head.is_static() && body.as_ref().is_none_or(Tpl::is_static) {
        let rng = crate::script::random::Rng::for_user(0, 0);
        let cx = RenderCtx {
            vu_id: 0,
            iteration: 0,
            vars: &[],
            rows: &[],
            data: &[],
            rng: &rng,
        };
        let wire = Wire::Dynamic { head, body };
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let bytes = Bytes::copy_from_slice(wire.render(&mut out, &mut scratch, &cx));
        return Ok(Wire::Static(bytes));
    }
    Ok(Wire::Dynamic { head, body })
}
