//! WebSocket as a connection kind: the handshake rendered per user, `send`/`expect` steps on
//! messages, `listen` steps that record every pushed message (with its push latency when it
//! carries a timestamp), and a held connection answering pings and sending heartbeats.

use serde_json_path::JsonPath;
use stampede_api::FieldError;
use stampede_api::scenario::{Expect, Step, WebSocketConnection};
use stampede_api::validate::fields::header;
use tokio::time::Instant;

use crate::protocol::http1::kind::authority;
use crate::protocol::message::{self, Listen, Message};
use crate::protocol::websocket::client::{self as ws, Conn, Heartbeat};
use crate::protocol::websocket::frame::Opcode;
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::finder;
use crate::script::reply::{Reply, no_header};
use crate::script::template::{Escape, Names, Tpl};
use crate::stats::Outcome;

#[derive(Debug)]
pub struct WebSocket {
    /// The handshake request: request line and headers, each line ending in CRLF, without
    /// the key and the blank line.
    head: Tpl,
    heartbeat: Option<Heartbeat>,
}

#[derive(Debug)]
pub enum WsStep {
    Message(Box<Message<Matcher>>),
    Listen(Listen),
}

/// Conditions a message must meet to be the one a step waits for.
#[derive(Debug, Default)]
pub struct Matcher {
    pub text: Option<Vec<u8>>,
    pub contains: Option<memchr::memmem::Finder<'static>>,
    pub json: Vec<(JsonPath, serde_json::Value)>,
    pub regex: Option<regex::bytes::Regex>,
    pub binary: Option<Vec<u8>>,
}

impl Matcher {
    /// Whether a message matches; `json` is its parse when the step needs JSON.
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

impl Protocol for WebSocket {
    type Options = WebSocketConnection;
    type Conn = Conn;
    type Step = WsStep;
    type Local = ();

    fn compile(w: &WebSocketConnection, p: &str, names: &Names) -> Result<WebSocket, FieldError> {
        let url = w.parsed_url().map_err(FieldError::at(format!("{p}.url")))?;
        let mut head = Tpl::default();
        head.push_str("GET ");
        head.push_str(url.path());
        if let Some(q) = url.query() {
            head.push_str("?");
            head.push_str(q);
        }
        head.push_str(" HTTP/1.1\r\nhost: ");
        head.push_str(&authority(&url));
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
            let hp = format!("{p}.headers.{k}");
            header(&hp, k, v)?;
            head.push_str(&k.to_ascii_lowercase());
            head.push_str(": ");
            head.append(&Tpl::compile(v, Escape::Header, names).map_err(FieldError::at(hp))?);
            head.push_str("\r\n");
        }
        let heartbeat = w.heartbeat.as_ref().map(|h| Heartbeat {
            every: h.every.as_std(),
            opcode: if h.ping { Opcode::Ping } else { Opcode::Text },
            payload: h.text.clone().unwrap_or_default().into_bytes(),
        });
        Ok(WebSocket { head, heartbeat })
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(WsStep, StepMeta), FieldError> {
        if let Some(l) = &step.listen {
            let (listen, meta) = message::compile_listen(p, l, &common)?;
            return Ok((WsStep::Listen(listen), meta));
        }
        message::compile(p, step, common, names, |p, e| {
            let m = matcher(p, e)?;
            let json = !m.json.is_empty();
            Ok((m, json))
        })
        .map(|(m, meta)| (WsStep::Message(Box::new(m)), meta))
    }

    fn holds_connection(&self) -> bool {
        true
    }

    async fn connect(&self, _: &(), io: &mut Io<'_>) -> Result<Conn, Outcome> {
        let (endpoint, id) = (io.endpoint, io.id);
        let (cx, out, buf) = io.split();
        buf.clear();
        self.head.render(buf, &cx);
        ws::open(endpoint, id, buf, out, self.heartbeat.as_ref()).await
    }

    async fn step(&self, _: &(), c: &mut Conn, step: &WsStep, io: &mut Io<'_>) -> StepEnd {
        match step {
            WsStep::Message(m) => self.message(c, m, io).await,
            WsStep::Listen(l) => self.listen(c, l, io).await,
        }
    }

    async fn hold(
        &self,
        c: &mut Conn,
        until: Option<Instant>,
        io: &Io<'_>,
    ) -> Result<bool, Outcome> {
        c.hold(io.scratch, self.heartbeat.as_ref(), until, Some(io.wake))
            .await
    }

    async fn shutdown(&self, c: Conn) {
        c.close().await;
    }
}

impl WebSocket {
    async fn message(&self, c: &mut Conn, m: &Message<Matcher>, io: &mut Io<'_>) -> StepEnd {
        let started = Instant::now();
        let mut sent = 0;
        if let Some(s) = &m.send {
            let (cx, out, buf) = io.split();
            buf.clear();
            s.body.render(buf, &cx);
            let opcode = if s.binary {
                Opcode::Binary
            } else {
                Opcode::Text
            };
            match c.send(opcode, buf, out).await {
                Ok(n) => sent = n,
                Err(o) => {
                    io.record(m.stat, Record::failed(o, 0));
                    return StepEnd::Broken;
                }
            }
        }
        let sent_at = Instant::now();
        let Some(e) = &m.expect else {
            io.record_reply(m.stat, message::SENT, sent, 0, started, sent_at);
            return StepEnd::Next;
        };
        let deadline = sent_at + e.timeout;
        let beat = self.heartbeat.as_ref();
        let got = loop {
            // Everything read while waiting counts: skipped messages, frames, pings.
            let before = c.received;
            match c.recv(io.scratch, beat, Some(deadline), None).await {
                Ok(Some(msg)) => {
                    let json: Option<serde_json::Value> = if m.needs_json {
                        serde_json::from_slice(msg.payload).ok()
                    } else {
                        None
                    };
                    if !e.how.matches(msg.opcode, msg.payload, json.as_ref()) {
                        continue;
                    }
                    let done = Instant::now();
                    let reply = Reply {
                        body: msg.payload,
                        json: json.as_ref(),
                        status: None,
                        header: &no_header,
                        type_name: None,
                    };
                    let v = m.rules.judge(io.vars, &reply, done - sent_at);
                    break Ok((v, done, c.received - before));
                }
                Ok(None) => break Err(Outcome::Timeout),
                Err(o) => break Err(o),
            }
        };
        match got {
            Ok((v, done, read)) => {
                io.record_reply(m.stat, v, sent, read, sent_at, done);
                StepEnd::Next
            }
            Err(o) => {
                io.record(m.stat, Record::failed(o, sent));
                // A reply that never came leaves the connection fine, unless a pong or
                // heartbeat write stalled meanwhile.
                if o == Outcome::Timeout && !c.is_broken() {
                    StepEnd::Stop
                } else {
                    StepEnd::Broken
                }
            }
        }
    }

    /// Listens until the step's time is up (or the user is retired).
    async fn listen(&self, c: &mut Conn, l: &Listen, io: &mut Io<'_>) -> StepEnd {
        let until = Instant::now() + l.duration;
        let beat = self.heartbeat.as_ref();
        loop {
            match c.recv(io.scratch, beat, Some(until), Some(io.wake)).await {
                Ok(Some(msg)) => io.record(l.stat, l.record(msg.payload)),
                // Retired: the iteration ends here.
                Ok(None) => return StepEnd::Stop,
                Err(Outcome::Timeout) => return StepEnd::Next,
                Err(o) => {
                    io.record(l.stat, Record::failed(o, 0));
                    return StepEnd::Broken;
                }
            }
        }
    }
}

fn matcher(p: &str, e: &Expect) -> Result<Matcher, FieldError> {
    Ok(Matcher {
        text: e.text.as_ref().map(|t| t.as_bytes().to_vec()),
        contains: e.contains.as_ref().map(|c| finder(c.as_bytes())),
        json: e.parsed_json_paths(p)?,
        regex: e.parsed_regex(p)?,
        binary: e.parsed_base64(p)?,
    })
}
