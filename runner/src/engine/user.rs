//! One virtual user: its own connection, opened before it sends and reopened with backoff,
//! its extracted values and data rows, and the steps it runs. What a connection speaks is the
//! scenario's kind (`crate::protocol::Kind`); this module runs the user's life over it
//! without knowing which kind it is.
//! Hot path: renders into reused buffers and records into the worker's stats without locks.
//! Memory: an idle user is this task's future, so every step's work runs in a boxed future
//! of its own and only a waiting step's state stays allocated.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::scenario::{CStep, CompiledScenario, KindStep};
use crate::protocol::{Conn, Io, Record, StepEnd, record};
use crate::stats::{Delta, Outcome};

/// What a whole test shares, read-only, across threads.
#[derive(Debug)]
pub struct Shared {
    pub scenario: CompiledScenario,
    pub cursors: crate::script::data::Cursors,
}

/// What the users of one worker thread share. Single-threaded: `RefCell`, not locks.
pub struct WorkerCx {
    pub shared: Arc<Shared>,
    pub stats: RefCell<Delta>,
    pub active: Cell<u64>,
    /// Open model: users waiting for an iteration, oldest first, so work rotates over every
    /// user and connection (a stack would keep a few hot and the rest idle).
    pub idle: RefCell<std::collections::VecDeque<Rc<Slot>>>,
    /// Open model: iterations that came due while every user was busy, oldest first, each
    /// waiting at most `MAX_QUEUE_WAIT` for a free user. `backlog_limit` (a second of this
    /// worker's rate, at least one per user) bounds its memory.
    pub backlog: RefCell<std::collections::VecDeque<Instant>>,
    pub backlog_limit: Cell<usize>,
    pub open: bool,
    /// The instant the plan starts: a `startAt`, or once every initial user is ready.
    pub t0: Cell<Option<Instant>>,
    /// Set by the worker at `t0`, on its precise timer; `started` wakes the waiting users.
    pub running: Cell<bool>,
    pub started: Notify,
    /// Users that finished connecting and `onStart` (or failed their first connect).
    pub ready: Cell<u64>,
    /// Worker threads of the engine: user ids step by this within a worker.
    pub workers: u64,
    /// (stride, offset) turning a user's id in this runner into its `{{ vu.id }}`.
    pub vu_ids: (u64, u64),
    /// The run's seed: with the user's `{{ vu.id }}`, it seeds the user's random stream.
    pub seed: u64,
    /// Where protocols read into while a connection holds no buffer of its own.
    pub scratch: RefCell<Box<[u8]>>,
    /// What the kind's users of this worker share (HTTP/2's connection groups).
    pub local: crate::protocol::Local,
}

/// The worker's scratch buffer: as big as one UDP datagram can be.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// How long an open-model iteration may wait for a free user before it is dropped. Arrivals
/// that find every user busy wait, as real clients would, and the wait is part of their
/// latency-from-intended. Bounding the wait (not the count) is what let 50 users hold
/// 100,000/s through the target's 2–4 ms stalls: a one-per-user bound dropped 1% there.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

impl WorkerCx {
    /// Seconds into the plan at `now`: 0 before it starts or while its start is not known.
    pub fn elapsed_at(&self, now: Instant) -> f64 {
        self.t0
            .get()
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The user's `{{ vu.id }}`: unique across every runner of the test.
    pub fn vu_id(&self, slot: &Slot) -> u64 {
        slot.id
            .saturating_mul(self.vu_ids.0)
            .saturating_add(self.vu_ids.1)
    }

    /// The oldest queued iteration that has not waited too long; older ones are dropped.
    fn next_queued(&self) -> Option<Instant> {
        let mut backlog = self.backlog.borrow_mut();
        let now = Instant::now();
        while let Some(at) = backlog.pop_front() {
            if now.saturating_duration_since(at) <= MAX_QUEUE_WAIT {
                return Some(at);
            }
            self.stats.borrow_mut().dropped += 1;
        }
        None
    }

    /// Waits until the worker says the plan has started (or the slot is retired).
    async fn wait_for_start(&self, slot: &Slot) {
        while !self.running.get() && !slot.retire.get() {
            tokio::select! {
                _ = self.started.notified() => {}
                _ = slot.notify.notified() => {}
            }
        }
    }
}

/// The handle a worker keeps on one user.
#[derive(Debug)]
pub struct Slot {
    pub id: u64,
    pub notify: Notify,
    /// Open model: the intended start of the iteration handed over.
    pub job: Cell<Option<Instant>>,
    pub retire: Cell<bool>,
    /// The results slot of the step waiting for its answers, if one is, and how many it
    /// still waits for: what the worker counts as `interrupted` when the end-of-test drain
    /// has to cut this user off.
    pub in_flight: Cell<Option<(usize, u32)>>,
}

impl Slot {
    pub fn new(id: u64) -> Slot {
        Slot {
            id,
            notify: Notify::new(),
            job: Cell::new(None),
            retire: Cell::new(false),
            in_flight: Cell::new(None),
        }
    }

    pub fn retire(&self) {
        self.retire.set(true);
        self.notify.notify_one();
    }
}

/// Reconnect delays: 10 ms doubling up to 2 s, each with jitter (half to all of it) so
/// users do not reconnect in step.
#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    fn fail(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let ms = (10u64 << (self.failures - 1).min(8)).min(2000);
        let jitter = fastrand::u64(0..=ms / 2);
        self.not_before = Some(Instant::now() + Duration::from_millis(ms / 2 + jitter));
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }
}

/// A user's buffers and the values its templates render with.
struct Bag {
    vars: Vec<Vec<u8>>,
    rows: Vec<usize>,
    iteration: u64,
    out: Vec<u8>,
    buf: Vec<u8>,
    rng: crate::script::random::Rng,
}

struct User {
    conn: Option<Conn>,
    backoff: Backoff,
    bag: Bag,
    unique: Vec<Option<usize>>,
    /// The connection is open and no request has used it yet (see `Delta::connects_used`).
    fresh: bool,
}

/// What the kind may use of user `slot` for a step meant to start at `intended`.
fn io<'a>(
    w: &'a WorkerCx,
    slot: &'a Slot,
    bag: &'a mut Bag,
    intended: Instant,
    retry: bool,
) -> Io<'a> {
    let sc = &w.shared.scenario;
    Io {
        endpoint: &sc.endpoint,
        id: slot.id,
        workers: w.workers,
        vu_id: w.vu_id(slot),
        iteration: bag.iteration,
        vars: &mut bag.vars,
        rows: &bag.rows,
        data: &sc.data,
        rng: &bag.rng,
        out: &mut bag.out,
        buf: &mut bag.buf,
        scratch: &w.scratch,
        wake: &slot.notify,
        stats: &w.stats,
        active: &w.active,
        intended,
        retry,
        in_flight: &slot.in_flight,
    }
}

/// Counts the answer user `slot` was still waiting for as `interrupted`: its task is about to
/// be dropped at the end of the drain, so it would otherwise vanish from every count.
pub fn interrupt(w: &WorkerCx, slot: &Slot) {
    if let Some((stat, n)) = slot.in_flight.take() {
        for _ in 0..n {
            record(&w.stats, stat, Record::failed(Outcome::Interrupted, 0));
        }
    }
}

/// Runs one user until its slot is retired.
pub async fn run(w: Rc<WorkerCx>, slot: Rc<Slot>) {
    let sc = &w.shared.scenario;
    let Some(unique) = w.shared.cursors.take_unique(&sc.data) else {
        // No `unique` row is free (the user count outgrew the data set). Counted once; the
        // user holds its place without a connection until retired, so it is neither
        // respawned in a loop nor holds back the start.
        w.stats.borrow_mut().connect_errors[Outcome::DataExhausted as usize] += 1;
        w.ready.set(w.ready.get() + 1);
        while !slot.retire.get() {
            slot.notify.notified().await;
        }
        return;
    };
    let mut u = User {
        conn: None,
        backoff: Backoff::default(),
        bag: Bag {
            vars: vec![Vec::new(); sc.extracted.len()],
            rows: vec![0; sc.data.len()],
            iteration: 0,
            out: Vec::new(),
            buf: Vec::new(),
            rng: crate::script::random::Rng::for_user(w.seed, w.vu_id(&slot)),
        },
        unique,
        fresh: false,
    };
    // Connect before anything is sent, retrying until connected or retired.
    let mut counted_ready = false;
    while !slot.retire.get() {
        if Box::pin(u.connect(&w, &slot, true)).await.is_ok() {
            break;
        }
        if !counted_ready {
            // An unreachable target must not hold the start back forever.
            counted_ready = true;
            w.ready.set(w.ready.get() + 1);
        }
        let wait = u.backoff.not_before.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = tokio::time::sleep_until(wait) => {}
            _ = slot.notify.notified() => {}
        }
    }
    if !slot.retire.get() {
        u.run_steps(&w, &slot, &sc.on_start, Instant::now()).await;
    }
    if !counted_ready {
        w.ready.set(w.ready.get() + 1);
    }
    if !w.open && !slot.retire.get() {
        // Closed model: everyone connected, now fire together.
        w.wait_for_start(&slot).await;
    }
    while !slot.retire.get() {
        let queued = if w.open { w.next_queued() } else { None };
        let intended = if let Some(at) = queued {
            at
        } else if w.open {
            w.idle.borrow_mut().push_back(slot.clone());
            u.wait_for_job(&w, &slot).await;
            match slot.job.take() {
                Some(at) => at,
                None => continue, // woken to retire
            }
        } else {
            Instant::now()
        };
        u.bag.iteration += 1;
        u.run_steps(&w, &slot, &sc.steps, intended).await;
        w.stats.borrow_mut().iterations += 1;
    }
    if u.conn.is_some() && !sc.on_stop.is_empty() {
        // The retirement may have left a wake-up no step took: onStop runs in full, so its
        // first think or listen must not take that as a second retirement.
        tokio::select! {
            biased;
            _ = slot.notify.notified() => {}
            _ = std::future::ready(()) => {}
        }
        u.run_steps(&w, &slot, &sc.on_stop, Instant::now()).await;
    }
    u.close(&w).await;
    w.shared.cursors.give_back(&u.unique);
}

impl User {
    /// Opens the connection. A failure is counted as a failed connect when `count` is set;
    /// a step that connects counts it as its own outcome instead, so it is counted once.
    async fn connect(&mut self, w: &WorkerCx, slot: &Slot, count: bool) -> Result<(), Outcome> {
        let kind = &w.shared.scenario.kind;
        let opened = {
            let mut io = io(w, slot, &mut self.bag, Instant::now(), false);
            kind.connect(&w.local, &mut io).await
        };
        // The handshake's buffers are not kept: an idle user holds none.
        self.bag.out = Vec::new();
        self.bag.buf = Vec::new();
        match opened {
            Ok(c) => {
                self.conn = Some(c);
                self.backoff.reset();
                if kind.counts_connects() {
                    self.fresh = true;
                    w.active.set(w.active.get() + 1);
                    w.stats.borrow_mut().connects += 1;
                }
                Ok(())
            }
            Err(o) => {
                self.backoff.fail();
                if count {
                    w.stats.borrow_mut().connect_errors[o as usize] += 1;
                }
                Err(o)
            }
        }
    }

    /// Makes sure a step has a connection: connects now if there is none (after the
    /// backoff); the step's outcome if that fails. Every step goes through here, so a
    /// connection is counted as used (`connects_used`) once, by its first step.
    async fn ensure_conn(&mut self, w: &WorkerCx, slot: &Slot) -> Result<(), Outcome> {
        if self.conn.is_none() {
            if let Some(at) = self.backoff.not_before {
                tokio::time::sleep_until(at).await;
            }
            Box::pin(self.connect(w, slot, false)).await?;
        }
        if std::mem::take(&mut self.fresh) {
            w.stats.borrow_mut().connects_used += 1;
        }
        Ok(())
    }

    fn drop_conn(&mut self, w: &WorkerCx) {
        // A connection dropped before any request used it stays an attempt of its own.
        self.fresh = false;
        if let Some(c) = self.conn.take() {
            w.shared.scenario.kind.release(&c, &w.active);
        }
    }

    /// A connection that failed while no step was using it: counted, dropped, backed off.
    fn lost(&mut self, w: &WorkerCx, o: Outcome) {
        w.stats.borrow_mut().connect_errors[o as usize] += 1;
        self.drop_conn(w);
        self.backoff.fail();
    }

    /// Holds the connection until `until` (true) or until woken (false), reconnecting after
    /// the backoff when the kind's users hold theirs and it is gone.
    async fn hold(&mut self, w: &WorkerCx, slot: &Slot, until: Option<Instant>) -> bool {
        let kind = &w.shared.scenario.kind;
        loop {
            match &mut self.conn {
                Some(c) => {
                    let io = io(w, slot, &mut self.bag, Instant::now(), false);
                    match kind.hold(c, until, &io).await {
                        Ok(reached) => return reached,
                        Err(o) => {
                            self.lost(w, o);
                            if until.is_some() {
                                // A pause cut short by a lost connection ends the iteration.
                                return false;
                            }
                        }
                    }
                }
                None if kind.holds_connection() => {
                    let at = self.backoff.not_before.unwrap_or_else(Instant::now);
                    let at = until.map_or(at, |u| at.min(u));
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = slot.notify.notified() => return false,
                    }
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return true;
                    }
                    let _ = Box::pin(self.connect(w, slot, true)).await;
                }
                None => return crate::protocol::idle(until, &slot.notify).await,
            }
        }
    }

    /// Open model, between iterations: waits for the next job, keeping the connection alive
    /// (WebSocket pings and heartbeats) and reconnecting when the server drops it.
    async fn wait_for_job(&mut self, w: &WorkerCx, slot: &Slot) {
        self.hold(w, slot, None).await;
    }

    /// A pause; false when cut short (retired, or the connection failed meanwhile). Users of
    /// kinds that hold their connection keep it alive through the pause, and reconnect
    /// during it when it is gone, as a client that only holds a connection does.
    async fn think(&mut self, w: &WorkerCx, slot: &Slot, d: Duration) -> bool {
        self.hold(w, slot, Some(Instant::now() + d)).await
    }

    /// Ends the connection cleanly, once and for all.
    async fn close(&mut self, w: &WorkerCx) {
        if let Some(c) = self.conn.take() {
            let kind = &w.shared.scenario.kind;
            kind.release(&c, &w.active);
            kind.shutdown(c).await;
        }
    }

    /// Runs `steps` once. A think is cut short when the user is retired; a step that breaks
    /// the connection ends the iteration (the rest would run on nothing).
    async fn run_steps(
        &mut self,
        w: &WorkerCx,
        slot: &Slot,
        steps: &[CStep],
        mut intended: Instant,
    ) {
        if steps.is_empty() {
            // An absent onStart/onStop must not consume a sequential row.
            return;
        }
        let sc = &w.shared.scenario;
        w.shared
            .cursors
            .pick(&sc.data, &self.unique, &mut self.bag.rows);
        for step in steps {
            slot.in_flight.set(step.awaited());
            let go_on = match step {
                CStep::Think(d) => self.think(w, slot, *d).await,
                CStep::Kind(k) => Box::pin(self.step(w, slot, k, intended)).await,
            };
            slot.in_flight.set(None);
            if !go_on {
                return;
            }
            intended = Instant::now();
        }
    }

    /// One step of the scenario's kind; false when the iteration cannot go on.
    async fn step(&mut self, w: &WorkerCx, slot: &Slot, k: &KindStep, intended: Instant) -> bool {
        let kind = &w.shared.scenario.kind;
        let mut retry = false;
        loop {
            if let Err(o) = self.ensure_conn(w, slot).await {
                // Every answer the step would have waited for failed with the connect.
                for _ in 0..k.meta.answers.max(1) {
                    record(&w.stats, k.stat, Record::failed(o, 0));
                }
                return false;
            }
            let Some(conn) = self.conn.as_mut() else {
                return false;
            };
            let end = {
                let mut io = io(w, slot, &mut self.bag, intended, retry);
                kind.step(&w.local, conn, &k.step, &mut io).await
            };
            match end {
                StepEnd::Next => {
                    self.backoff.reset();
                    return true;
                }
                StepEnd::NextOnNewConnection => {
                    self.backoff.reset();
                    self.drop_conn(w);
                    return true;
                }
                StepEnd::Stop => return false,
                StepEnd::Broken => {
                    self.drop_conn(w);
                    self.backoff.fail();
                    return false;
                }
                StepEnd::Stale => {
                    retry = true;
                    self.drop_conn(w);
                }
            }
        }
    }
}
