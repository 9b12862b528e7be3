//! What users speak, one folder per connection kind, over the connection layer they share
//! (`net`: connecting from a source address, `tls`: rustls client settings, `reason`: why
//! failures failed). Every kind implements `Protocol`; the registry at the bottom is the one
//! place that names them all, and the engine drives users through it without knowing which
//! kind it runs.

pub mod http1;
pub mod http2;
pub mod message;
pub mod net;
pub mod reason;
pub mod redis;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod websocket;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use stampede_api::FieldError;
use stampede_api::scenario::{Connection, Step as ApiStep};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::protocol::net::Endpoint;
use crate::script::data::DataSet;
use crate::script::reply::{Code, Rules};
use crate::script::template::{Names, RenderCtx};
use crate::stats::{Delta, Outcome};

/// One connection kind: how its users connect, hold, run steps and close.
///
/// Futures are not `Send`: each worker thread runs its users on its own single-threaded
/// runtime, which is what lets the hot path go without locks.
#[allow(async_fn_in_trait)]
pub trait Protocol: Sized + std::fmt::Debug + Send + Sync {
    /// The kind's options in `spec.scenario.connection`.
    type Options;
    /// One user's connection.
    type Conn;
    /// One compiled step.
    type Step: std::fmt::Debug + Send + Sync;
    /// What the users of one worker thread share (HTTP/2's connection groups).
    type Local: Default;

    /// Compiles the options at `p` (`spec.scenario.connection.<kind>`), taking the values the
    /// api parses them into (`HttpConnection::parsed_url` …) with the errors `validate` reports.
    fn compile(opts: &Self::Options, p: &str, names: &Names) -> Result<Self, FieldError>;

    /// Compiles step `step` at `p`, a step that is not a `think` and whose actions the kind
    /// takes (the engine asked `stampede_api::validate::kind_takes` first). Steps compile in
    /// order (`onStart`, `steps`, `onStop`), so a kind may keep what one step tells it for
    /// later ones (the scripts Redis loads).
    fn compile_step(
        &mut self,
        p: &str,
        step: &ApiStep,
        common: Common,
        names: &Names,
    ) -> Result<(Self::Step, StepMeta), FieldError>;

    /// Its users hold their connection through pauses and between iterations, and reconnect
    /// when it drops, as chat and device clients do; the others connect when a step needs it.
    fn holds_connection(&self) -> bool {
        false
    }

    /// Whether the engine counts a connect as one connection opened. False for a kind whose
    /// users share connections, which counts the ones it opens itself (`Io::opened_shared`).
    fn counts_connects(&self) -> bool {
        true
    }

    async fn connect(&self, local: &Self::Local, io: &mut Io<'_>) -> Result<Self::Conn, Outcome>;

    /// Runs one step and records what it measured through `io`.
    async fn step(
        &self,
        local: &Self::Local,
        conn: &mut Self::Conn,
        step: &Self::Step,
        io: &mut Io<'_>,
    ) -> StepEnd;

    /// Holds an idle connection until `until` (`Ok(true)`), or until the user is woken
    /// (`Ok(false)`); the error is how the connection failed meanwhile.
    async fn hold(
        &self,
        conn: &mut Self::Conn,
        until: Option<Instant>,
        io: &Io<'_>,
    ) -> Result<bool, Outcome> {
        let _ = conn;
        Ok(idle(until, io.wake).await)
    }

    /// The connection is let go (dropped or closed): the active-connections gauge follows.
    fn release(&self, conn: &Self::Conn, active: &Cell<u64>) {
        let _ = conn;
        active.set(active.get().saturating_sub(1));
    }

    /// A clean goodbye (a close frame, a TCP shutdown), after `release`.
    async fn shutdown(&self, conn: Self::Conn) {
        drop(conn);
    }
}

/// Sleeps until `until` (true) or until woken (false); with no `until`, until woken.
pub async fn idle(until: Option<Instant>, wake: &Notify) -> bool {
    match until {
        Some(at) => tokio::select! {
            _ = tokio::time::sleep_until(at) => true,
            _ = wake.notified() => false,
        },
        None => {
            wake.notified().await;
            false
        }
    }
}

/// What every step shares, compiled by the engine before the kind compiles the rest.
pub struct Common {
    /// The results slot the step records into.
    pub stat: usize,
    pub rules: Rules,
}

/// What the engine needs to know of a compiled step.
#[derive(Clone, Copy, Debug)]
pub struct StepMeta {
    /// The answers it waits for once it has sent (a pipeline's copies; 0 for a `listen`):
    /// what the end-of-test drain counts as `interrupted` if it cuts the step off.
    pub answers: u32,
    /// How long it may wait for its answer.
    pub timeout: Option<Duration>,
}

/// How a step ended, for the user's connection and iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepEnd {
    /// Done: the next step follows.
    Next,
    /// Done, and the server ended the connection (HTTP `connection: close`): the next step
    /// opens a new one, without backoff.
    NextOnNewConnection,
    /// The iteration ends here; the connection is fine.
    Stop,
    /// The connection broke (already recorded): it is dropped, the user backs off, and the
    /// iteration ends.
    Broken,
    /// A kept-alive connection was found closed before anything was answered: the engine
    /// reconnects and runs the step once more (`Io::retry` is then set).
    Stale,
}

/// What a step records: its outcome, checks, bytes and timings.
pub struct Record {
    pub outcome: Outcome,
    pub passed: u64,
    pub failed: u64,
    pub sent: u64,
    pub received: u64,
    /// From the intended start, and from the send; absent when nothing was timed.
    pub timing: Option<(Duration, Duration)>,
    /// The server's code, for a `server_error`.
    pub code: Code,
}

impl Record {
    /// A step that failed with `outcome` after sending `sent` bytes, untimed.
    pub fn failed(outcome: Outcome, sent: u64) -> Record {
        Record {
            outcome,
            passed: 0,
            failed: 0,
            sent,
            received: 0,
            timing: None,
            code: Code::None,
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// Records `r` into results slot `stat` of `stats`.
pub fn record(stats: &RefCell<Delta>, stat: usize, r: Record) {
    let mut st = stats.borrow_mut();
    let s = &mut st.steps[stat];
    s.outcomes[r.outcome as usize] += 1;
    if r.outcome == Outcome::ServerError {
        r.code.count(&mut s.codes);
    }
    s.checks_passed += r.passed;
    s.checks_failed += r.failed;
    s.bytes_sent += r.sent;
    s.bytes_received += r.received;
    if let Some((latency, service)) = r.timing {
        s.latency.saturating_record(micros(latency));
        s.service.saturating_record(micros(service));
    }
}

/// What a kind may use of its user and worker while it connects or runs a step.
pub struct Io<'a> {
    pub endpoint: &'a Endpoint,
    /// The user's id in this runner (picks its source address).
    pub id: u64,
    /// Worker threads of the engine: ids step by this within a worker.
    pub workers: u64,
    pub vu_id: u64,
    pub iteration: u64,
    pub vars: &'a mut [Vec<u8>],
    pub rows: &'a [usize],
    pub data: &'a [DataSet],
    /// The user's random stream (templates' `random`, `zipf` …).
    pub rng: &'a crate::script::random::Rng,
    /// The user's write buffer, and a second one for a body or part rendered apart.
    pub out: &'a mut Vec<u8>,
    pub buf: &'a mut Vec<u8>,
    /// The worker's read buffer, for kinds whose connections keep none of their own.
    pub scratch: &'a RefCell<Box<[u8]>>,
    /// Notified when the user is retired: a step that waits without end stops on it.
    pub wake: &'a Notify,
    pub stats: &'a RefCell<Delta>,
    pub active: &'a Cell<u64>,
    /// The intended start of the step (latency is measured from it).
    pub intended: Instant,
    /// This is the second run of a step that ended `Stale`.
    pub retry: bool,
    /// The step's results slot and the answers it still waits for (see `StepMeta::answers`);
    /// each `record` into that slot takes one off.
    pub in_flight: &'a Cell<Option<(usize, u32)>>,
}

impl<'a> Io<'a> {
    /// What templates render with, beside the two write buffers.
    pub fn split(&mut self) -> (RenderCtx<'_>, &mut Vec<u8>, &mut Vec<u8>) {
        (
            RenderCtx {
                vu_id: self.vu_id,
                iteration: self.iteration,
                vars: self.vars,
                rows: self.rows,
                data: self.data,
                rng: self.rng,
            },
            self.out,
            self.buf,
        )
    }

    pub fn record(&self, stat: usize, r: Record) {
        if let Some((s, n)) = self.in_flight.get()
            && s == stat
        {
            self.in_flight.set((n > 1).then(|| (s, n - 1)));
        }
        record(self.stats, stat, r);
    }

    /// A reply judged `v`, `received` bytes, done at `done` after being sent at `sent_at`.
    pub fn record_reply(
        &self,
        stat: usize,
        v: crate::script::reply::Verdict,
        sent: u64,
        received: u64,
        sent_at: Instant,
        done: Instant,
    ) {
        self.record(
            stat,
            Record {
                outcome: v.outcome,
                passed: v.passed,
                failed: v.failed,
                sent,
                received,
                timing: Some((
                    done.saturating_duration_since(self.intended),
                    done.saturating_duration_since(sent_at),
                )),
                code: v.code,
            },
        );
    }

    /// A kind whose users share connections opened one: it counts as active and as used by
    /// the requests it carries (it is not an attempt of its own in the error ratio).
    pub fn opened_shared(&self) {
        self.active.set(self.active.get() + 1);
        let mut st = self.stats.borrow_mut();
        st.connects += 1;
        st.connects_used += 1;
    }
}

/// The registry: one line per kind — its variant, its type and its field in
/// `spec.scenario.connection`. Everything that dispatches over kinds is generated here, so
/// adding a kind is its folder and one line below; dispatch is a `match`, static, in the hot
/// loop.
macro_rules! kinds {
    ($($Kind:ident => $Type:ty = $field:ident,)*) => {
        /// The scenario's connection kind, compiled.
        #[derive(Debug)]
        pub enum Kind { $($Kind($Type),)* }

        /// A user's connection.
        pub enum Conn { $($Kind(<$Type as Protocol>::Conn),)* }

        /// A compiled step of the scenario's kind (held boxed, in `engine::scenario::KindStep`).
        #[derive(Debug)]
        #[allow(clippy::large_enum_variant)]
        pub enum Step { $($Kind(<$Type as Protocol>::Step),)* }

        /// What the users of one worker thread share, for the scenario's kind.
        pub enum Local { $($Kind(<$Type as Protocol>::Local),)* }

        impl Kind {
            pub fn compile(c: &Connection, names: &Names) -> Result<Kind, FieldError> {
                const P: &str = "spec.scenario.connection";
                // The api's rule: exactly one kind is set, so the first found is the one.
                c.exactly_one().map_err(FieldError::at(P))?;
                $(
                    if let Some(o) = &c.$field {
                        let p = concat!("spec.scenario.connection.", stringify!($field));
                        return Ok(Kind::$Kind(<$Type as Protocol>::compile(o, p, names)?));
                    }
                )*
                // Not reached: `exactly_one` found one of the fields above set.
                Err(FieldError::new(P, "no connection kind is set"))
            }

            pub fn compile_step(
                &mut self,
                p: &str,
                step: &ApiStep,
                common: Common,
                names: &Names,
            ) -> Result<(Step, StepMeta), FieldError> {
                match self {
                    $(Kind::$Kind(k) => k.compile_step(p, step, common, names).map(|(s, m)| (Step::$Kind(s), m)),)*
                }
            }

            pub fn local(&self) -> Local {
                match self {
                    $(Kind::$Kind(_) => Local::$Kind(Default::default()),)*
                }
            }

            pub fn holds_connection(&self) -> bool {
                match self {
                    $(Kind::$Kind(k) => k.holds_connection(),)*
                }
            }

            pub fn counts_connects(&self) -> bool {
                match self {
                    $(Kind::$Kind(k) => k.counts_connects(),)*
                }
            }

            pub async fn connect(&self, local: &Local, io: &mut Io<'_>) -> Result<Conn, Outcome> {
                match (self, local) {
                    $((Kind::$Kind(k), Local::$Kind(l)) => k.connect(l, io).await.map(Conn::$Kind),)*
                    #[allow(unreachable_patterns)]
                    _ => Err(Outcome::Protocol),
                }
            }

            pub async fn step(&self, local: &Local, conn: &mut Conn, step: &Step, io: &mut Io<'_>) -> StepEnd {
                match (self, local, conn, step) {
                    $((Kind::$Kind(k), Local::$Kind(l), Conn::$Kind(c), Step::$Kind(s)) => k.step(l, c, s, io).await,)*
                    // A step of one kind never meets another kind's connection: the whole
                    // scenario is compiled for one.
                    #[allow(unreachable_patterns)]
                    _ => StepEnd::Broken,
                }
            }

            pub async fn hold(&self, conn: &mut Conn, until: Option<Instant>, io: &Io<'_>) -> Result<bool, Outcome> {
                match (self, conn) {
                    $((Kind::$Kind(k), Conn::$Kind(c)) => k.hold(c, until, io).await,)*
                    #[allow(unreachable_patterns)]
                    _ => Err(Outcome::Protocol),
                }
            }

            pub fn release(&self, conn: &Conn, active: &Cell<u64>) {
                match (self, conn) {
                    $((Kind::$Kind(k), Conn::$Kind(c)) => k.release(c, active),)*
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }

            pub async fn shutdown(&self, conn: Conn) {
                match (self, conn) {
                    $((Kind::$Kind(k), Conn::$Kind(c)) => k.shutdown(c).await,)*
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
        }
    };
}

kinds! {
    Http1 => http1::Http1 = http,
    Http2 => http2::Http2 = http2,
    WebSocket => websocket::WebSocket = websocket,
    Tcp => tcp::Tcp = tcp,
    Udp => udp::Udp = udp,
    Redis => redis::Redis = redis,
}
