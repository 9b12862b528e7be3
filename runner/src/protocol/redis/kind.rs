//! Redis as a connection kind: each user holds one connection, opened with AUTH, SELECT and
//! CLIENT SETNAME `<clientName>-<vu.id>`; a `command` step writes its rendered command (N
//! copies of it with `pipeline: N`) and judges each reply, timed to its own arrival. An error
//! reply is a `server_error` with its prefix (`WRONGTYPE`) as code; an EVALSHA answered
//! `NOSCRIPT` is sent once more after a SCRIPT LOAD of the script a step of the scenario
//! loads under that SHA1. With `?cluster=true` commands are routed by `cluster`; with
//! `subscribe` the connection only listens.

use sha1::{Digest, Sha1};
use stampede_api::FieldError;
use stampede_api::scenario::Step;
use stampede_api::scenario::redis::RedisConnection;
use tokio::time::Instant;

use crate::protocol::message::{self, Listen};
use crate::protocol::redis::Conn;
use crate::protocol::redis::cluster::{self, Topology};
use crate::protocol::redis::command::{
    self, CommandStep, DEFAULT_TIMEOUT, render_command, static_cx,
};
use crate::protocol::redis::link::{Hello, Links};
use crate::protocol::redis::resp;
use crate::protocol::{Common, Io, Protocol, Record, StepEnd, StepMeta};
use crate::script::template::{Escape, Names, Tpl};
use crate::stats::Outcome;

#[derive(Debug)]
pub struct Redis {
    hello: Hello,
    /// Scripts that `SCRIPT LOAD` steps of the scenario load, by their SHA1 (hex): what an
    /// EVALSHA answered `NOSCRIPT` (a server restarted, a `SCRIPT FLUSH`) is retried with.
    scripts: Vec<(String, Vec<u8>)>,
    /// `?cluster=true`: commands go to the node that owns their key's slot.
    cluster: bool,
}

#[derive(Debug)]
pub enum RedisStep {
    Command(Box<CommandStep>),
    Listen(Listen),
}

impl Protocol for Redis {
    type Options = RedisConnection;
    type Conn = Links;
    type Step = RedisStep;
    type Local = Topology;

    fn compile(o: &RedisConnection, p: &str, names: &Names) -> Result<Redis, FieldError> {
        let url = o.parse_url().map_err(FieldError::at(format!("{p}.url")))?;
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
        let tpls = |field: &str, list: &[String]| -> Result<Vec<Tpl>, FieldError> {
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    Tpl::compile(c, Escape::Raw, names)
                        .map_err(FieldError::at(format!("{p}.subscribe.{field}[{i}]")))
                })
                .collect()
        };
        Ok(Redis {
            hello: Hello {
                hello,
                hello_replies,
                // By default a connection names its run too, so two runs' clients on one
                // server are told apart: `stampede-20261208-015224-a1b2c3-17`.
                client_prefix: o
                    .client_name
                    .clone()
                    .unwrap_or_else(|| format!("stampede-{}", names.run_id)),
                channels: tpls("channels", &sub.channels)?,
                patterns: tpls("patterns", &sub.patterns)?,
            },
            scripts: Vec::new(),
            cluster: url.cluster,
        })
    }

    fn compile_step(
        &mut self,
        p: &str,
        step: &Step,
        common: Common,
        names: &Names,
    ) -> Result<(RedisStep, StepMeta), FieldError> {
        if let Some(l) = &step.listen {
            let (listen, meta) = message::compile_listen(p, l, &common)?;
            return Ok((RedisStep::Listen(listen), meta));
        }
        // The engine asked the api whether redis takes the step: it is a `command` here.
        let Some(command) = &step.command else {
            return Err(FieldError::new(p, "not a `command` step"));
        };
        let cp = format!("{p}.command");
        let mut args = Vec::with_capacity(command.len());
        for (i, a) in command.iter().enumerate() {
            args.push(
                Tpl::compile(a, Escape::Raw, names)
                    .map_err(FieldError::at(format!("{cp}[{i}]")))?,
            );
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
                answers: copies as u32,
                timeout: Some(timeout),
            },
        ))
    }

    fn holds_connection(&self) -> bool {
        true
    }

    async fn connect(&self, topo: &Topology, io: &mut Io<'_>) -> Result<Links, Outcome> {
        let addr = io.endpoint.addr;
        let mut main = self.hello.open(addr, io).await?;
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
                cluster::command(&self.hello, &self.scripts, topo, links, c, io).await
            }
            RedisStep::Command(c) => command::run(&mut links.main, c, &self.scripts, io).await,
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
