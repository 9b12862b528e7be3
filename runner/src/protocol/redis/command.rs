//! A `command` step: its compiled form, how it runs on one connection (pipelined copies in
//! one write, each timed to its own reply, EVALSHA reloaded once on NOSCRIPT), and how a reply
//! is judged: an error reply is a `server_error` with its prefix as code.

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::redis::Conn;
use crate::protocol::redis::resp::{self, Reply, Type, write_bulk};
use crate::protocol::{Io, Record, StepEnd};
use crate::script::reply::{Code, Reply as Judged, Rules, Verdict, no_header};
use crate::script::template::{RenderCtx, Tpl};
use crate::stats::Outcome;

/// How long a command waits for its replies unless the step says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One command step on one connection (N copies with `pipeline: N`); `scripts` are what
/// an EVALSHA answered NOSCRIPT is reloaded with.
pub async fn run(
    conn: &mut Conn,
    c: &CommandStep,
    scripts: &[(String, Vec<u8>)],
    io: &mut Io<'_>,
) -> StepEnd {
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
            && let Some(script) = script_for(scripts, c, io)
        {
            at = match reload(conn, c, script, io, deadline).await {
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
pub fn script_for<'s>(
    scripts: &'s [(String, Vec<u8>)],
    c: &CommandStep,
    io: &mut Io<'_>,
) -> Option<&'s [u8]> {
    let (cx, _, buf) = io.split();
    buf.clear();
    c.args.get(1)?.render(buf, &cx);
    scripts
        .iter()
        .find(|(s, _)| s.as_bytes().eq_ignore_ascii_case(buf))
        .map(|(_, script)| script.as_slice())
}

/// Loads `script` and sends the EVALSHA once more: where its reply lies. The time it
/// takes is part of the request's.
async fn reload(
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

fn is_noscript(r: Option<Reply<'_>>) -> bool {
    r.and_then(|r| r.error_code()) == Some(b"NOSCRIPT")
}

/// Judges one reply: an error reply is a `server_error` with its prefix as code, unless the
/// step expects an error (`check: { replyType: error }`).
pub fn judge(
    rules: &Rules,
    vars: &mut [Vec<u8>],
    reply: &Reply<'_>,
    scratch: &mut Vec<u8>,
    service: Duration,
) -> Verdict {
    let mut v = rules.judge(
        vars,
        &Judged {
            body: reply.body(scratch),
            json: None,
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

pub fn render_command(out: &mut Vec<u8>, args: &[Tpl], buf: &mut Vec<u8>, cx: &RenderCtx) {
    resp::write_array_header(out, args.len());
    for a in args {
        buf.clear();
        a.render(buf, cx);
        write_bulk(out, buf);
    }
}

/// What a template without expressions renders with.
pub fn static_cx(rng: &crate::script::random::Rng) -> RenderCtx<'_> {
    RenderCtx {
        vu_id: 0,
        iteration: 0,
        vars: &[],
        rows: &[],
        data: &[],
        rng,
    }
}
