//! UDP as a connection kind: `send` is one datagram, `expect` the next one back within the
//! timeout (else `lost`). A lost or refused datagram leaves the socket as it was.

use stampede_api::FieldError;
use stampede_api::scenario::{Step, UdpConnection};
use tokio::time::Instant;

use crate::protocol::message::{self, Message};
use crate::protocol::udp::Conn;
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::reply::no_header;
use crate::script::template::Names;
use crate::stats::Outcome;

#[derive(Debug)]
pub struct Udp;

impl Protocol for Udp {
    type Options = UdpConnection;
    type Conn = Conn;
    type Step = Message<()>;
    type Local = ();

    fn compile(_: &UdpConnection, _: &str, _: &Names) -> Result<Udp, FieldError> {
        Ok(Udp)
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(Message<()>, StepMeta), FieldError> {
        message::compile(p, step, common, names, |_, _| Ok(((), false)))
    }

    async fn connect(&self, _: &(), io: &mut Io<'_>) -> Result<Conn, Outcome> {
        io.endpoint.udp(io.id).await.map(Conn::new)
    }

    async fn step(&self, _: &(), c: &mut Conn, m: &Message<()>, io: &mut Io<'_>) -> StepEnd {
        let started = Instant::now();
        let scratch = io.scratch;
        let mut sent = 0;
        if let Some(s) = &m.send {
            let (cx, _, buf) = io.split();
            buf.clear();
            s.body.render(buf, &cx);
            if let Err(o) = c.send(buf, scratch).await {
                io.record(m.stat, Record::failed(o, 0));
                return StepEnd::Stop;
            }
            sent = buf.len() as u64;
        }
        let sent_at = Instant::now();
        let Some(e) = &m.expect else {
            io.record_reply(m.stat, message::SENT, sent, 0, started, sent_at);
            return StepEnd::Next;
        };
        match c.recv(io.scratch, sent_at + e.timeout).await {
            Ok(n) => {
                let done = Instant::now();
                let buf = io.scratch.borrow();
                let v = m
                    .rules
                    .judge_body(io.vars, &buf[..n], None, &no_header, done - sent_at);
                io.record_reply(m.stat, v, sent, n as u64, sent_at, done);
                StepEnd::Next
            }
            Err(o) => {
                io.record(m.stat, Record::failed(o, sent));
                StepEnd::Stop
            }
        }
    }
}
