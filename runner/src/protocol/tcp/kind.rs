//! TCP as a connection kind: `send` writes the rendered bytes, `expect` reads a reply up to
//! where its framing says it ends; users hold their connection and notice when the server
//! closes it.

use stampede_api::FieldError;
use stampede_api::scenario::tcp::{self as api, framing};
use stampede_api::scenario::{Expect, Step, TcpConnection};
use tokio::time::Instant;

use crate::protocol::message::{self, Message};
use crate::protocol::tcp::{Conn, Framing};
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::finder;
use crate::script::reply::no_header;
use crate::script::template::Names;
use crate::stats::Outcome;

#[derive(Debug)]
pub struct Tcp;

impl Protocol for Tcp {
    type Options = TcpConnection;
    type Conn = Conn;
    type Step = Message<Framing>;
    type Local = ();

    fn compile(_: &TcpConnection, _: &str, _: &Names) -> Result<Tcp, FieldError> {
        Ok(Tcp)
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(Message<Framing>, StepMeta), FieldError> {
        message::compile(p, step, common, names, |p, e| {
            Ok((compile_framing(p, e)?, false))
        })
    }

    fn holds_connection(&self) -> bool {
        true
    }

    async fn connect(&self, _: &(), io: &mut Io<'_>) -> Result<Conn, Outcome> {
        io.endpoint.connect(io.id).await.map(Conn::new)
    }

    async fn step(&self, _: &(), c: &mut Conn, m: &Message<Framing>, io: &mut Io<'_>) -> StepEnd {
        let started = Instant::now();
        let mut sent = 0;
        if let Some(s) = &m.send {
            let (cx, _, buf) = io.split();
            buf.clear();
            s.body.render(buf, &cx);
            if let Err(o) = c.send(buf).await {
                io.record(m.stat, Record::failed(o, 0));
                return StepEnd::Broken;
            }
            sent = buf.len() as u64;
        }
        let sent_at = Instant::now();
        let Some(e) = &m.expect else {
            io.record_reply(m.stat, message::SENT, sent, 0, started, sent_at);
            return StepEnd::Next;
        };
        let before = c.received;
        match c.reply(&e.how, sent_at + e.timeout).await {
            Ok(range) => {
                let done = Instant::now();
                let read = c.received - before;
                let v = m.rules.judge_body(
                    io.vars,
                    &c.bytes()[range],
                    None,
                    &no_header,
                    done - sent_at,
                );
                io.record_reply(m.stat, v, sent, read, sent_at, done);
                StepEnd::Next
            }
            Err(o) => {
                io.record(m.stat, Record::failed(o, sent));
                StepEnd::Broken
            }
        }
    }

    async fn hold(
        &self,
        c: &mut Conn,
        until: Option<Instant>,
        io: &Io<'_>,
    ) -> Result<bool, Outcome> {
        match until {
            None => c.watch(io.wake).await.map(|()| false),
            Some(at) => tokio::select! {
                r = c.watch(io.wake) => r.map(|()| false),
                _ = tokio::time::sleep_until(at) => Ok(true),
            },
        }
    }

    async fn shutdown(&self, c: Conn) {
        c.close().await;
    }
}

/// Where the reply of the `expect` at `p` ends, by the api's rule (`tcp::framing`).
fn compile_framing(p: &str, e: &Expect) -> Result<Framing, FieldError> {
    Ok(match framing(p, e)? {
        api::Framing::Delimiter(d) => Framing::Delimiter(Box::new(finder(d.as_bytes()))),
        api::Framing::LengthPrefix(n) => Framing::LengthPrefix(n),
        api::Framing::Regex(re) => Framing::Regex(re),
    })
}
