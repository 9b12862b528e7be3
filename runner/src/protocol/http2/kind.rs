//! HTTP/2 as a connection kind: `request` steps as streams on a connection that a group of
//! `streams` users of one worker shares. Whichever user opens, replaces or loses a group's
//! connection accounts for it, so the active-connections gauge and the connect count stay
//! right.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use stampede_api::FieldError;
use stampede_api::scenario::{Http2Connection, Step};
use tokio::time::Instant;

use crate::protocol::http1::kind::{
    DEFAULT_TIMEOUT, authority, body_of, merged_headers, path_and_query, request_of,
};
use crate::protocol::http2::{self, Group};
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::reply::Rules;
use crate::script::template::{Escape, Names, Tpl};
use crate::stats::Outcome;

#[derive(Debug)]
pub struct Http2 {
    /// Users per connection.
    streams: u64,
    /// `scheme://authority` of every request URI.
    base: String,
    url: url::Url,
    headers: BTreeMap<String, String>,
}

/// A request over HTTP/2: its parts, rendered into a `Request` per request.
#[derive(Debug)]
pub struct H2Step {
    pub stat: usize,
    pub method: hyper::Method,
    /// Path and query, after the base URL's path.
    pub path: Tpl,
    pub headers: Vec<(hyper::header::HeaderName, Tpl)>,
    pub body: Option<Tpl>,
    pub timeout: Duration,
    pub rules: Rules,
}

/// The groups of one worker, by group number.
#[derive(Default)]
pub struct Groups(RefCell<HashMap<u64, Weak<Group>>>);

impl Http2 {
    /// The group user `io.id` belongs to (made on first use).
    fn group(&self, groups: &Groups, io: &Io) -> Rc<Group> {
        // Ids in a worker are index + k·workers; consecutive k share a connection.
        let key = (io.id / io.workers.max(1)) / self.streams.max(1);
        let mut groups = groups.0.borrow_mut();
        if let Some(g) = groups.get(&key).and_then(Weak::upgrade) {
            return g;
        }
        groups.retain(|_, g| g.strong_count() > 0);
        let g = Rc::new(Group::default());
        groups.insert(key, Rc::downgrade(&g));
        g
    }

    /// A stream on the group's connection, opening it if it is closed.
    async fn sender(&self, group: &Group, io: &Io<'_>) -> Result<http2::Sender, Outcome> {
        let r = group.sender(io.endpoint, io.id).await;
        let (opened, replaced) = match &r {
            Ok(s) => (s.opened, s.replaced),
            Err(f) => (false, f.replaced),
        };
        if opened {
            io.opened_shared();
        }
        if replaced {
            io.active.set(io.active.get().saturating_sub(1));
        }
        r.map_err(|f| f.outcome)
    }
}

impl Protocol for Http2 {
    type Options = Http2Connection;
    type Conn = Rc<Group>;
    type Step = H2Step;
    type Local = Groups;

    fn compile(o: &Http2Connection, p: &str, _: &Names) -> Result<Http2, FieldError> {
        let url = o.parsed_url().map_err(FieldError::at(format!("{p}.url")))?;
        Ok(Http2 {
            streams: u64::from(o.streams.unwrap_or(1).max(1)),
            base: format!("{}://{}", url.scheme(), authority(&url)),
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
    ) -> Result<(H2Step, StepMeta), FieldError> {
        let req = request_of(p, step)?;
        let p = format!("{p}.request");
        // The api's rule (upper-case letters) leaves only methods hyper takes.
        let method = hyper::Method::from_bytes(req.parsed_method(&p)?.as_bytes())
            .map_err(|e| FieldError::new(format!("{p}.method"), e.to_string()))?;
        let path = path_and_query(&p, req, &self.url, names)?;
        let merged = merged_headers(&p, "http2", &self.headers, req)?;
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
            // `merged_headers` checked the name by the api's rule, which leaves only tokens.
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| FieldError::new(hp, e.to_string()))?;
            headers.push((
                name,
                Tpl::compile(v, Escape::Header, names).map_err(FieldError::at(hp.clone()))?,
            ));
        }
        let timeout = req.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT);
        Ok((
            H2Step {
                stat: common.stat,
                method,
                path,
                headers,
                body: body_of(&p, req, names)?,
                timeout,
                rules: common.rules,
            },
            StepMeta {
                answers: 1,
                timeout: Some(timeout),
            },
        ))
    }

    /// A group's connection carries its users' requests: the group counts what it opens.
    fn counts_connects(&self) -> bool {
        false
    }

    async fn connect(&self, groups: &Groups, io: &mut Io<'_>) -> Result<Rc<Group>, Outcome> {
        let group = self.group(groups, io);
        self.sender(&group, io).await?;
        Ok(group)
    }

    async fn step(
        &self,
        _: &Groups,
        group: &mut Rc<Group>,
        r: &H2Step,
        io: &mut Io<'_>,
    ) -> StepEnd {
        let mut sender = match self.sender(group, io).await {
            Ok(s) => s,
            Err(o) => {
                io.record(r.stat, Record::failed(o, 0));
                return StepEnd::Broken;
            }
        };
        let (cx, out, buf) = io.split();
        out.clear();
        out.extend_from_slice(self.base.as_bytes());
        r.path.render(out, &cx);
        let mut builder = hyper::Request::builder()
            .method(r.method.clone())
            .uri(out.as_slice());
        let mut sent = out.len() as u64;
        for (name, value) in &r.headers {
            buf.clear();
            value.render(buf, &cx);
            sent += (name.as_str().len() + buf.len()) as u64;
            builder = builder.header(name, buf.as_slice());
        }
        let body = match &r.body {
            Some(t) => {
                buf.clear();
                t.render(buf, &cx);
                Bytes::copy_from_slice(buf)
            }
            None => Bytes::new(),
        };
        sent += body.len() as u64;
        let Ok(req) = builder.body(Full::new(body)) else {
            // A rendered path or header value HTTP cannot carry.
            io.record(r.stat, Record::failed(Outcome::Protocol, 0));
            return StepEnd::Next;
        };
        let sent_at = Instant::now();
        let res = http2::exchange(&mut sender.send, req, r.timeout).await;
        let done = Instant::now();
        match res {
            Err(o) => {
                // A stream that timed out leaves the connection usable; anything else ends it.
                if o != Outcome::Timeout && group.broken(sender.generation) {
                    io.active.set(io.active.get().saturating_sub(1));
                }
                io.record(r.stat, Record::failed(o, sent));
                if o == Outcome::Timeout {
                    StepEnd::Stop
                } else {
                    StepEnd::Broken
                }
            }
            Ok(resp) => {
                let v = r.rules.judge_body(
                    io.vars,
                    &resp.body,
                    Some(resp.status.as_u16()),
                    &|n| resp.header(n),
                    done - sent_at,
                );
                io.record_reply(r.stat, v, sent, resp.received, sent_at, done);
                StepEnd::Next
            }
        }
    }

    /// The last user of a group closes its connection by letting go of it.
    fn release(&self, group: &Rc<Group>, active: &std::cell::Cell<u64>) {
        if Rc::strong_count(group) == 1 && group.is_open() {
            active.set(active.get().saturating_sub(1));
        }
    }
}
