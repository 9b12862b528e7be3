//! Redis as a connection kind: each user holds one connection, opened with AUTH, SELECT and
//! CLIENT SETNAME `<clientName>-<vu.id>`; a `command` step writes its rendered command (N
//! copies of it with `pipeline: N`) and judges each reply, timed to its own arrival. An error
//! reply is a `server_error` with its prefix (`WRONGTYPE`) as code; an EVALSHA answered
//! `NOSCRIPT` is sent once more after a SCRIPT LOAD of the script a step of the scenario
//! loads under that SHA1. With `?cluster=true` commands are routed by `cluster`; with
//! `subscribe` the connection only listens.

use std::time::Duration;

use sha1::{Digest, Sha1};
use stampede_api::scenario::Step;
use stampede_api::scenario::redis::RedisConnection;
use tokio::time::Instant;

use std::net::SocketAddr;

use crate::protocol::message::{self, Listen};
use crate::protocol::redis::cluster::{self, Topology};
use crate::protocol::redis::resp::{self, Reply, Type};
use crate::protocol::redis::{Conn, resp::write_bulk};
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::reply::{Code, Reply as Judged, Rules, Verdict, no_header};
use crate::script::template::{Escape, Names, RenderCtx, Tpl};
use crate::script::{CompileError, at};
use crate::stats::Outcome;

/// How long a command waits for its replies unless the step says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Redis {
    /// AUTH and SELECT, as the URL says: written before each connection's CLIENT SETNAME.
    hello: Vec<u8>,
    hello_replies: usize,
    client_prefix: String,
    /// Scripts that `SCRIPT LOAD` steps of the scenario load, by their SHA1 (hex): what an
    /// EVALSHA answered `NOSCRIPT` (a server restarted, a `SCRIPT FLUSH`) is retried with.
    pub(super) scripts: Vec<(String, Vec<u8>)>,
    /// Pub/sub: SUBSCRIBE and PSUBSCRIBE arguments, sent on every connect.
    channels: Vec<Tpl>,
    patterns: Vec<Tpl>,
    /// `?cluster=true`: commands go to the node that owns their key's slot.
    pub(super) cluster: bool,
}

/// A user's connections: the one it opened first and, in a cluster, one to every other node
/// it has sent to.
pub struct Links {
    pub main: Conn,
    pub main_addr: SocketAddr,
    pub others: Vec<(SocketAddr, Conn)>,
}

#[derive(Debug)]
pub enum RedisStep {
    Command(Box<CommandStep>),
    Listen(Listen),
}

#[derive(Debug)]
pub struct CommandStep {
    pub stat: usize,
    pub args: Vec<Tpl>,
    /// Every copy's bytes, when no argument varies: written as is.
    pub fixed: Option<Box<[u8]>>,
    pub copies: usize,
    pub timeout: Duration,
    pub rules: Rules,
    /// EVALSHA: retried once through SCRIPT LOAD on NOSCRIPT.
    pub evalsha: bool,
    /// Which argument is the key a cluster routes by (`cluster::key_index`).
    pub key: Option<usize>,
}

impl Protocol for Redis {
    type Options = RedisConnection;
    type Conn = Links;
    type Step = RedisStep;
    type Local = Topology;

    fn compile(o: &RedisConnection, p: &str, names: &Names) -> Result<Redis, CompileError> {
        let url = o.parse_url().map_err(at(format!("{p}.url")))?;
        let mut hello = Vec::new();
        let mut hello_replies = 0;
        if let Some(pass) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(pass.as_bytes());
            resp::write_command(&mut hello, args.into_iter());
            hello_replies += 1;
        }
        if url.db != 0 {
            let db = url.db.to_string();
            resp::write_command(&mut hello, [&b"SELECT"[..], db.as_bytes()].into_iter());
            hello_replies += 1;
        }
        let sub = o.subscribe.clone().unwrap_or_default();
        let tpls = |field: &str, list: &[String]| -> Result<Vec<Tpl>, CompileError> {
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    Tpl::compile(c, Escape::Raw, names)
                        .map_err(at(format!("{p}.subscribe.{field}[{i}]")))
                })
                .collect()
        };
        Ok(Redis {
            hello,
            hello_replies,
            client_prefix: o.client_name.clone().unwrap_or_else(|| "stampede".into()),
            scripts: Vec::new(),
            channels: tpls("channels", &sub.channels)?,
            patterns: tpls("patterns", &sub.patterns)?,
            cluster: url.cluster,
        })
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(RedisStep, StepMeta), CompileError> {
        if let Some(l) = &step.listen {
            let (listen, meta) = message::compile_listen(p, l, &common)?;
            return Ok((RedisStep::Listen(listen), meta));
        }
        let Some(command) = &step.command else {
            return Err(at(p)(
                "redis connections take `command` and `think` steps".into(),
            ));
        };
        let cp = format!("{p}.command");
        let mut args = Vec::with_capacity(command.len());
        for (i, a) in command.iter().enumerate() {
            args.push(Tpl::compile(a, Escape::Raw, names).map_err(at(format!("{cp}[{i}]")))?);
        }
        let name = command
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        if name == "SCRIPT"
            && command
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case("LOAD"))
            && let (Some(script), Some(t)) = (command.get(2), args.get(2))
            && t.is_static()
        {
            let sha = hex(&Sha1::digest(script.as_bytes()));
            if !self.scripts.iter().any(|(s, _)| *s == sha) {
                self.scripts.push((sha, script.as_bytes().to_vec()));
            }
        }
        let copies = step.pipeline.unwrap_or(1).max(1) as usize;
        let fixed = args.iter().all(Tpl::is_static).then(|| {
            let mut one = Vec::new();
            let rng = crate::script::random::Rng::for_user(0, 0);
            render_command(&mut one, &args, &mut Vec::new(), &static_cx(&rng));
            one.repeat(copies).into_boxed_slice()
        });
        let timeout = step.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT);
        Ok((
            RedisStep::Command(Box::new(CommandStep {
                stat: common.stat,
                args,
                fixed,
                copies,
                timeout,
                rules: common.rules,
                evalsha: name == "EVALSHA",
                key: cluster::key_index(&name, command.len()),
            })),
            StepMeta {
                awaited: true,
                timeout: Some(timeout),
            },
        ))
    }

    fn holds_connection(&self) -> bool {
        true
    }

    async fn connect(&self, topo: &Topology, io: &mut Io<'_>) -> Result<Links, Outcome> {
        let addr = io.endpoint.addr;
        let mut main = self.open(addr, io).await?;
        if self.cluster && !topo.is_known() {
            cluster::refresh(
                topo,
                &mut main,
                Instant::now() + io.endpoint.connect_timeout,
                io,
            )
            .await?;
        }
        Ok(Links {
            main,
            main_addr: addr,
            others: Vec::new(),
        })
    }

    async fn step(
        &self,
        topo: &Topology,
        links: &mut Links,
        step: &RedisStep,
        io: &mut Io<'_>,
    ) -> StepEnd {
        match step {
            RedisStep::Command(c) if self.cluster => {
                cluster::command(self, topo, links, c, io).await
            }
            RedisStep::Command(c) => self.command(&mut links.main, c, io).await,
            RedisStep::Listen(l) => listen(&mut links.main, l, io).await,
        }
    }

    async fn hold(
        &self,
        links: &mut Links,
        until: Option<Instant>,
        io: &Io<'_>,
    ) -> Result<bool, Outcome> {
        let conn = &mut links.main;
        match until {
            None => conn.watch(io.wake).await.map(|()| false),
            Some(t) => tokio::select! {
                r = conn.watch(io.wake) => r.map(|()| false),
                _ = tokio::time::sleep_until(t) => Ok(true),
            },
        }
    }

    /// Every node's connection of the user goes with it.
    fn release(&self, links: &Links, active: &std::cell::Cell<u64>) {
        active.set(active.get().saturating_sub(1 + links.others.len() as u64));
    }

    async fn shutdown(&self, links: Links) {
        links.main.close().await;
        for (_, c) in links.others {
            c.close().await;
        }
    }
}

impl Redis {
    /// Opens one connection to `addr` (the endpoint's, or a cluster node's) and sets it up:
    /// AUTH, SELECT, CLIENT SETNAME, the subscriptions.
    pub(super) async fn open(&self, addr: SocketAddr, io: &mut Io<'_>) -> Result<Conn, Outcome> {
        let started = Instant::now();
        let (endpoint, id) = (io.endpoint, io.id);
        let stream = if addr == endpoint.addr {
            endpoint.connect(id).await?
        } else {
            let node = crate::protocol::net::Endpoint {
                addr,
                ..endpoint.clone()
            };
            node.connect(id).await?
        };
        let mut conn = Conn::new(stream);
        let name = format!("{}-{}", self.client_prefix, io.vu_id);
        let (cx, out, buf) = io.split();
        out.clear();
        out.extend_from_slice(&self.hello);
        resp::write_command(
            out,
            [&b"CLIENT"[..], b"SETNAME", name.as_bytes()].into_iter(),
        );
        for (cmd, list) in [
            (&b"SUBSCRIBE"[..], &self.channels),
            (b"PSUBSCRIBE", &self.patterns),
        ] {
            if list.is_empty() {
                continue;
            }
            resp::write_array_header(out, 1 + list.len());
            write_bulk(out, cmd);
            for c in list {
                buf.clear();
                c.render(buf, &cx);
                write_bulk(out, buf);
            }
        }
        conn.send(out).await?;
        let deadline = started + endpoint.connect_timeout;
        // One reply per set-up command, then one confirmation per channel and pattern.
        let replies = self.hello_replies + 1 + self.channels.len() + self.patterns.len();
        for _ in 0..replies {
            let at = conn.next(deadline).await.map_err(|o| match o {
                Outcome::Timeout => Outcome::ConnectTimeout,
                o => o,
            })?;
            let reply = conn.reply(at).ok_or(Outcome::Protocol)?;
            if reply.kind == Type::Error {
                // WRONGPASS, NOAUTH, a database out of range: the server's words say which.
                crate::protocol::reason::note(
                    Outcome::ServerError,
                    format_args!(
                        "Redis refused the connection's set-up: {}",
                        String::from_utf8_lossy(reply.data)
                    ),
                );
                return Err(Outcome::ServerError);
            }
        }
        Ok(conn)
    }

    /// One command step (N copies with `pipeline: N`).
    async fn command(&self, conn: &mut Conn, c: &CommandStep, io: &mut Io<'_>) -> StepEnd {
        let (cx, out, buf) = io.split();
        let bytes: &[u8] = match &c.fixed {
            Some(b) => b,
            None => {
                out.clear();
                for _ in 0..c.copies {
                    render_command(out, &c.args, buf, &cx);
                }
                out
            }
        };
        let sent = bytes.len() as u64 / c.copies as u64;
        let sent_at = Instant::now();
        if let Err(o) = conn.send(bytes).await {
            for _ in 0..c.copies {
                io.record(c.stat, Record::failed(o, sent));
            }
            return StepEnd::Broken;
        }
        let deadline = sent_at + c.timeout;
        for i in 0..c.copies {
            let mut at = match conn.next(deadline).await {
                Ok(at) => at,
                Err(o) => {
                    // A reply that came late would be taken for the next command's: the
                    // connection goes with the copies still unanswered.
                    for _ in i..c.copies {
                        io.record(c.stat, Record::failed(o, sent));
                    }
                    return StepEnd::Broken;
                }
            };
            if c.evalsha
                && c.copies == 1
                && is_noscript(conn.reply(at.clone()))
                && let Some(script) = self.script_for(c, io)
            {
                at = match self.reload(conn, c, script, io, deadline).await {
                    Ok(at) => at,
                    Err(o) => {
                        io.record(c.stat, Record::failed(o, sent));
                        return StepEnd::Broken;
                    }
                };
            }
            let done = Instant::now();
            // The reply's own bytes: a read that brought several pipelined replies at once
            // is not counted twice.
            let received = at.len() as u64;
            let Some(reply) = conn.reply(at) else {
                io.record(c.stat, Record::failed(Outcome::Protocol, sent));
                return StepEnd::Broken;
            };
            let v = judge(&c.rules, io.vars, &reply, io.buf, done - sent_at);
            io.record_reply(c.stat, v, sent, received, sent_at, done);
        }
        StepEnd::Next
    }

    /// The script a step of the scenario loads under the SHA1 this EVALSHA names.
    fn script_for(&self, c: &CommandStep, io: &mut Io<'_>) -> Option<&[u8]> {
        let (cx, _, buf) = io.split();
        buf.clear();
        c.args.get(1)?.render(buf, &cx);
        self.scripts
            .iter()
            .find(|(s, _)| s.as_bytes().eq_ignore_ascii_case(buf))
            .map(|(_, script)| script.as_slice())
    }

    /// Loads `script` and sends the EVALSHA once more: where its reply lies. The time it
    /// takes is part of the request's.
    async fn reload(
        &self,
        conn: &mut Conn,
        c: &CommandStep,
        script: &[u8],
        io: &mut Io<'_>,
        deadline: Instant,
    ) -> Result<std::ops::Range<usize>, Outcome> {
        let (cx, out, buf) = io.split();
        out.clear();
        resp::write_command(out, [&b"SCRIPT"[..], b"LOAD", script].into_iter());
        render_command(out, &c.args, buf, &cx);
        conn.send(out).await?;
        conn.next(deadline).await?;
        conn.next(deadline).await
    }
}

/// Records every message published to the connection's subscriptions until the step's time
/// is up (or the user is retired). Messages that arrived since the last listen are read
/// first, as a subscriber that paused would.
async fn listen(conn: &mut Conn, l: &Listen, io: &mut Io<'_>) -> StepEnd {
    let until = Instant::now() + l.duration;
    loop {
        // `next` is cancel-safe: bytes read stay in the buffer for the next call.
        let next = tokio::select! {
            r = conn.next(until) => r,
            _ = io.wake.notified() => return StepEnd::Stop,
        };
        let at = match next {
            Ok(at) => at,
            Err(Outcome::Timeout) => return StepEnd::Next,
            Err(o) => {
                io.record(l.stat, Record::failed(o, 0));
                return StepEnd::Broken;
            }
        };
        // ["message", channel, payload] or ["pmessage", pattern, channel, payload]; other
        // pushes (a subscribe confirmation, a pong) are not messages.
        let Some(r) = conn.reply(at) else { continue };
        let payload = match r.element(0).map(|k| k.data) {
            Some(b"message") => r.element(2),
            Some(b"pmessage") => r.element(3),
            _ => None,
        };
        if let Some(p) = payload {
            io.record(l.stat, l.record(p.data));
        }
    }
}

fn is_noscript(r: Option<Reply<'_>>) -> bool {
    r.and_then(|r| r.error_code()) == Some(b"NOSCRIPT")
}

/// Judges one reply: an error reply is a `server_error` with its prefix as code, unless the
/// step expects an error (`check: { replyType: error }`).
pub(super) fn judge(
    rules: &Rules,
    vars: &mut [Vec<u8>],
    reply: &Reply<'_>,
    scratch: &mut Vec<u8>,
    service: Duration,
) -> Verdict {
    let body = reply.body(scratch);
    let json: Option<serde_json::Value> = if rules.needs_json() {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let mut v = rules.judge(
        vars,
        &Judged {
            body,
            json: json.as_ref(),
            status: None,
            header: &no_header,
            type_name: Some(type_name(reply.kind)),
        },
        service,
    );
    if let Some(code) = reply.error_code()
        && rules.check.reply_type.as_deref() != Some("error")
    {
        v.outcome = Outcome::ServerError;
        v.code = Code::text(code);
    }
    v
}

/// The names `check.replyType` uses.
pub fn type_name(t: Type) -> &'static str {
    match t {
        Type::Status => "status",
        Type::Error => "error",
        Type::Integer => "integer",
        Type::String => "string",
        Type::Nil => "nil",
        Type::Array => "array",
    }
}

pub(super) fn render_command(out: &mut Vec<u8>, args: &[Tpl], buf: &mut Vec<u8>, cx: &RenderCtx) {
    resp::write_array_header(out, args.len());
    for a in args {
        buf.clear();
        a.render(buf, cx);
        write_bulk(out, buf);
    }
}

/// What a template without expressions renders with.
fn static_cx(rng: &crate::script::random::Rng) -> RenderCtx<'_> {
    RenderCtx {
        vu_id: 0,
        iteration: 0,
        vars: &[],
        rows: &[],
        data: &[],
        rng,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
