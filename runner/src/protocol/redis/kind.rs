//! Redis as a connection kind: each user holds one connection, opened with AUTH, SELECT and
//! CLIENT SETNAME `<clientName>-<vu.id>`; a `command` step writes its rendered command (N
//! copies of it with `pipeline: N`) and judges each reply, timed to its own arrival. An error
//! reply is a `server_error` with its prefix (`WRONGTYPE`) as code; an EVALSHA answered
//! `NOSCRIPT` is sent once more after a SCRIPT LOAD of the script a step of the scenario
//! loads under that SHA1.

use std::time::Duration;

use sha1::{Digest, Sha1};
use stampede_api::scenario::Step;
use stampede_api::scenario::redis::RedisConnection;
use tokio::time::Instant;

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
    scripts: Vec<(String, Vec<u8>)>,
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
}

impl Protocol for Redis {
    type Options = RedisConnection;
    type Conn = Conn;
    type Step = CommandStep;
    type Local = ();

    fn compile(o: &RedisConnection, p: &str, _: &Names) -> Result<Redis, CompileError> {
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
        Ok(Redis {
            hello,
            hello_replies,
            client_prefix: o.client_name.clone().unwrap_or_else(|| "stampede".into()),
            scripts: Vec::new(),
        })
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(CommandStep, StepMeta), CompileError> {
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
            render_command(&mut one, &args, &mut Vec::new(), &static_cx());
            one.repeat(copies).into_boxed_slice()
        });
        let timeout = step.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT);
        Ok((
            CommandStep {
                stat: common.stat,
                args,
                fixed,
                copies,
                timeout,
                rules: common.rules,
                evalsha: name == "EVALSHA",
            },
            StepMeta {
                awaited: true,
                timeout: Some(timeout),
            },
        ))
    }

    fn holds_connection(&self) -> bool {
        true
    }

    async fn connect(&self, _: &(), io: &mut Io<'_>) -> Result<Conn, Outcome> {
        let started = Instant::now();
        let mut conn = Conn::new(io.endpoint.connect(io.id).await?);
        let out = &mut *io.out;
        out.clear();
        out.extend_from_slice(&self.hello);
        let name = format!("{}-{}", self.client_prefix, io.vu_id);
        resp::write_command(
            out,
            [&b"CLIENT"[..], b"SETNAME", name.as_bytes()].into_iter(),
        );
        conn.send(out).await?;
        let deadline = started + io.endpoint.connect_timeout;
        for _ in 0..=self.hello_replies {
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

    async fn step(&self, _: &(), conn: &mut Conn, c: &CommandStep, io: &mut Io<'_>) -> StepEnd {
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

    async fn hold(
        &self,
        conn: &mut Conn,
        until: Option<Instant>,
        io: &Io<'_>,
    ) -> Result<bool, Outcome> {
        match until {
            None => conn.watch(io.wake).await.map(|()| false),
            Some(t) => tokio::select! {
                r = conn.watch(io.wake) => r.map(|()| false),
                _ = tokio::time::sleep_until(t) => Ok(true),
            },
        }
    }

    async fn shutdown(&self, conn: Conn) {
        conn.close().await;
    }
}

impl Redis {
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

fn is_noscript(r: Option<Reply<'_>>) -> bool {
    r.and_then(|r| r.error_code()) == Some(b"NOSCRIPT")
}

/// Judges one reply: an error reply is a `server_error` with its prefix as code, unless the
/// step expects an error (`check: { replyType: error }`).
fn judge(
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

fn render_command(out: &mut Vec<u8>, args: &[Tpl], buf: &mut Vec<u8>, cx: &RenderCtx) {
    resp::write_array_header(out, args.len());
    for a in args {
        buf.clear();
        a.render(buf, cx);
        write_bulk(out, buf);
    }
}

fn static_cx() -> RenderCtx<'static> {
    RenderCtx {
        vu_id: 0,
        iteration: 0,
        vars: &[],
        rows: &[],
        data: &[],
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
