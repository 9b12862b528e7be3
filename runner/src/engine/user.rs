//! One virtual user: its own connection, opened before it sends and reopened with backoff,
//! its extracted values and data rows, and the steps it runs. Protocol details live in
//! `crate::protocol`'s folders; this module runs steps over them and records.
//! Hot path: renders into reused buffers and records into the worker's stats without locks.
//! Memory: an idle user is this task's future, so every step's work runs in a boxed future
//! of its own and only a waiting step's state stays allocated.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::scenario::{
    CCheck, CExtract, CKind, CListen, CMessage, CRequest, CStep, CompiledScenario, ExtractSource,
    H2Request, Wire,
};
use crate::engine::template::RenderCtx;
use crate::protocol::http1::{self, Response};
use crate::protocol::http2;
use crate::protocol::websocket::client::{self as ws, Heartbeat};
use crate::stats::{Delta, Outcome};

/// What a whole test shares, read-only, across threads.
#[derive(Debug)]
pub struct Shared {
    pub scenario: CompiledScenario,
    pub cursors: crate::engine::data::Cursors,
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
    /// Where protocols read into while a connection holds no buffer of its own.
    pub scratch: RefCell<Box<[u8]>>,
    /// HTTP/2 connections shared by groups of `streams` users, by group.
    pub h2_groups: RefCell<HashMap<u64, Weak<http2::Group>>>,
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

    /// A stream on the group's shared connection for user `id`. Whichever user opens, replaces
    /// or loses that connection accounts for it here, so the active-connections gauge and the
    /// connect count stay right.
    async fn h2_sender(&self, group: &http2::Group, id: u64) -> Result<http2::Sender, Outcome> {
        let r = group.sender(&self.shared.scenario.endpoint, id).await;
        let (opened, replaced) = match &r {
            Ok(s) => (s.opened, s.replaced),
            Err(f) => (false, f.replaced),
        };
        if opened {
            self.active.set(self.active.get() + 1);
            // A group's connection carries its users' requests: it is not an attempt of its
            // own in the error ratio.
            let mut st = self.stats.borrow_mut();
            st.connects += 1;
            st.connects_used += 1;
        }
        if replaced {
            self.active.set(self.active.get() - 1);
        }
        r.map_err(|f| f.outcome)
    }

    /// The HTTP/2 group user `id` belongs to (made on first use).
    fn h2_group(&self, id: u64, streams: u64) -> Rc<http2::Group> {
        // Ids in a worker are index + k·workers; consecutive k share a connection.
        let key = (id / self.workers.max(1)) / streams.max(1);
        let mut groups = self.h2_groups.borrow_mut();
        if let Some(g) = groups.get(&key).and_then(Weak::upgrade) {
            return g;
        }
        groups.retain(|_, g| g.strong_count() > 0);
        let g = Rc::new(http2::Group::default());
        groups.insert(key, Rc::downgrade(&g));
        g
    }

    fn heartbeat(&self) -> Option<&Heartbeat> {
        match &self.shared.scenario.kind {
            CKind::WebSocket { heartbeat, .. } => heartbeat.as_ref(),
            _ => None,
        }
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
    /// The results slot of the step waiting for its answer, if one is: what the worker
    /// counts as `interrupted` when the end-of-test drain has to cut this user off.
    pub in_flight: Cell<Option<usize>>,
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

/// A user's connection.
enum Conn {
    Http1(http1::Conn),
    /// A share of the group's connection (which the group opens and reopens).
    Http2(Rc<http2::Group>),
    Ws(ws::Conn),
    Tcp(crate::protocol::tcp::Conn),
    Udp(crate::protocol::udp::Conn),
}

struct User {
    conn: Option<Conn>,
    backoff: Backoff,
    vars: Vec<Vec<u8>>,
    rows: Vec<usize>,
    unique: Vec<Option<usize>>,
    iteration: u64,
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// The connection is open and no request has used it yet (see `Delta::connects_used`).
    fresh: bool,
}

/// What templates render with for user `slot` (fields of the user passed apart, so its
/// buffers stay free to borrow mutably meanwhile).
fn render_cx<'a>(
    w: &'a WorkerCx,
    slot: &Slot,
    iteration: u64,
    vars: &'a [Vec<u8>],
    rows: &'a [usize],
) -> RenderCtx<'a> {
    RenderCtx {
        vu_id: w.vu_id(slot),
        iteration,
        vars,
        rows,
        data: &w.shared.scenario.data,
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// What a step records: its outcome, checks, bytes and timings.
struct Record {
    outcome: Outcome,
    passed: u64,
    failed: u64,
    sent: u64,
    received: u64,
    /// From the intended start, and from the send; absent when nothing was timed.
    timing: Option<(Duration, Duration)>,
}

fn record(w: &WorkerCx, stat: usize, r: Record) {
    let mut st = w.stats.borrow_mut();
    let s = &mut st.steps[stat];
    s.outcomes[r.outcome as usize] += 1;
    s.checks_passed += r.passed;
    s.checks_failed += r.failed;
    s.bytes_sent += r.sent;
    s.bytes_received += r.received;
    if let Some((latency, service)) = r.timing {
        s.latency.saturating_record(micros(latency));
        s.service.saturating_record(micros(service));
    }
}

/// Counts the answer user `slot` was still waiting for as `interrupted`: its task is about to
/// be dropped at the end of the drain, so it would otherwise vanish from every count.
pub fn interrupt(w: &WorkerCx, slot: &Slot) {
    if let Some(stat) = slot.in_flight.take() {
        record(w, stat, failed(Outcome::Interrupted, 0));
    }
}

fn failed(outcome: Outcome, sent: u64) -> Record {
    Record {
        outcome,
        passed: 0,
        failed: 0,
        sent,
        received: 0,
        timing: None,
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
        vars: vec![Vec::new(); sc.extracted.len()],
        rows: vec![0; sc.data.len()],
        unique,
        iteration: 0,
        out: Vec::new(),
        scratch: Vec::new(),
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
        u.iteration += 1;
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
        let sc = &w.shared.scenario;
        let ep = &sc.endpoint;
        let opened = match &sc.kind {
            CKind::Http1 => ep
                .connect(slot.id)
                .await
                .map(|s| Conn::Http1(http1::Conn::new(s))),
            CKind::Http2 { streams, .. } => {
                let group = w.h2_group(slot.id, *streams);
                match w.h2_sender(&group, slot.id).await {
                    Ok(_) => {
                        self.backoff.reset();
                        self.conn = Some(Conn::Http2(group));
                        return Ok(());
                    }
                    Err(o) => Err(o),
                }
            }
            CKind::WebSocket { head, heartbeat } => {
                let mut rendered = std::mem::take(&mut self.scratch);
                rendered.clear();
                head.render(
                    &mut rendered,
                    &render_cx(w, slot, self.iteration, &self.vars, &self.rows),
                );
                let r = ws::open(ep, slot.id, &rendered, &mut self.out, heartbeat.as_ref()).await;
                self.scratch = rendered;
                r.map(Conn::Ws)
            }
            CKind::Tcp => ep
                .connect(slot.id)
                .await
                .map(|s| Conn::Tcp(crate::protocol::tcp::Conn::new(s))),
            CKind::Udp => ep
                .udp(slot.id)
                .await
                .map(|s| Conn::Udp(crate::protocol::udp::Conn::new(s))),
        };
        // The handshake's buffers are not kept: an idle user holds none.
        self.out = Vec::new();
        self.scratch = Vec::new();
        match opened {
            Ok(c) => {
                self.conn = Some(c);
                self.fresh = true;
                self.backoff.reset();
                w.active.set(w.active.get() + 1);
                w.stats.borrow_mut().connects += 1;
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

    /// The connection a request step is about to use: connects now if there is none (after
    /// the backoff); the step's outcome if that fails. Every request step goes through here,
    /// so a connection is counted as used (`connects_used`) once, by its first request.
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
        match self.conn.take() {
            None => {}
            // The group's connection outlives a user that gave up on a request.
            Some(Conn::Http2(g)) => self.conn = Some(Conn::Http2(g)),
            Some(_) => w.active.set(w.active.get() - 1),
        }
    }

    /// A connection that failed while no step was using it: counted, dropped, backed off.
    fn lost(&mut self, w: &WorkerCx, o: Outcome) {
        w.stats.borrow_mut().connect_errors[o as usize] += 1;
        self.drop_conn(w);
        self.backoff.fail();
    }

    /// Open model, between iterations: waits for the next job, keeping the connection alive
    /// (WebSocket pings and heartbeats) and reconnecting when the server drops it.
    async fn wait_for_job(&mut self, w: &WorkerCx, slot: &Slot) {
        loop {
            match &mut self.conn {
                Some(Conn::Ws(c)) => match c
                    .hold(&w.scratch, w.heartbeat(), None, Some(&slot.notify))
                    .await
                {
                    Ok(_) => return,
                    Err(o) => self.lost(w, o),
                },
                Some(Conn::Tcp(c)) => match c.watch(&slot.notify).await {
                    Ok(()) => return,
                    Err(o) => self.lost(w, o),
                },
                None if w.shared.scenario.kind.holds_connection() => {
                    // Users hold their connection: reconnect after the backoff, not at the next job.
                    let at = self.backoff.not_before.unwrap_or_else(Instant::now);
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = slot.notify.notified() => return,
                    }
                    let _ = Box::pin(self.connect(w, slot, true)).await;
                }
                _ => {
                    slot.notify.notified().await;
                    return;
                }
            }
        }
    }

    /// Ends the connection cleanly (a WebSocket close frame), once and for all.
    async fn close(&mut self, w: &WorkerCx) {
        match self.conn.take() {
            None => {}
            // The last user of a group closes its connection by letting go of it.
            Some(Conn::Http2(g)) if Rc::strong_count(&g) == 1 && g.is_open() => {
                w.active.set(w.active.get() - 1);
            }
            Some(Conn::Http2(_)) => {}
            Some(c) => {
                w.active.set(w.active.get() - 1);
                match c {
                    Conn::Http1(c) => c.shutdown().await,
                    Conn::Ws(c) => c.close().await,
                    Conn::Tcp(c) => c.close().await,
                    Conn::Udp(_) | Conn::Http2(_) => {}
                }
            }
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
            .pick(&sc.data, &self.unique, &mut self.rows);
        for step in steps {
            slot.in_flight.set(step.awaited_stat());
            let go_on = match step {
                CStep::Think(d) => self.think(w, slot, *d).await,
                CStep::Request(r) => match &r.wire {
                    Wire::H2(h2) => Box::pin(self.request_h2(w, slot, r, h2, intended)).await,
                    _ => Box::pin(self.request(w, slot, r, intended)).await,
                },
                CStep::Message(m) => Box::pin(self.message(w, slot, m, intended)).await,
                CStep::Listen(l) => Box::pin(self.listen(w, slot, l)).await,
            };
            slot.in_flight.set(None);
            if !go_on {
                return;
            }
            intended = Instant::now();
        }
    }

    /// A pause; false when cut short (retired, or the connection failed meanwhile).
    ///
    /// Users of kinds that hold their connection (WebSocket, TCP) keep it alive through the
    /// pause, and reconnect during it when it is gone, as a client that only holds a
    /// connection does.
    async fn think(&mut self, w: &WorkerCx, slot: &Slot, d: Duration) -> bool {
        let until = Instant::now() + d;
        let holds = w.shared.scenario.kind.holds_connection();
        loop {
            match &mut self.conn {
                Some(Conn::Ws(c)) => {
                    return match c
                        .hold(&w.scratch, w.heartbeat(), Some(until), Some(&slot.notify))
                        .await
                    {
                        Ok(reached) => reached,
                        Err(o) => {
                            self.lost(w, o);
                            false
                        }
                    };
                }
                None if holds => {
                    let at = self
                        .backoff
                        .not_before
                        .unwrap_or_else(Instant::now)
                        .min(until);
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = slot.notify.notified() => return false,
                    }
                    if Instant::now() >= until {
                        return true;
                    }
                    let _ = Box::pin(self.connect(w, slot, true)).await;
                }
                _ => {
                    return tokio::select! {
                        _ = tokio::time::sleep_until(until) => true,
                        _ = slot.notify.notified() => false,
                    };
                }
            }
        }
    }

    /// One HTTP/1.1 request; false when the connection broke.
    async fn request(
        &mut self,
        w: &WorkerCx,
        slot: &Slot,
        r: &CRequest,
        intended: Instant,
    ) -> bool {
        let mut retried = false;
        loop {
            if let Err(o) = self.ensure_conn(w, slot).await {
                record(w, r.stat, failed(o, 0));
                return false;
            }
            let cx = render_cx(w, slot, self.iteration, &self.vars, &self.rows);
            let bytes = r.wire.render(&mut self.out, &mut self.scratch, &cx);
            let sent = bytes.len() as u64;
            let Some(Conn::Http1(conn)) = self.conn.as_mut() else {
                record(w, r.stat, failed(Outcome::Protocol, 0));
                return false;
            };
            let sent_at = Instant::now();
            let res = tokio::time::timeout(r.timeout, conn.exchange(bytes, r.is_head)).await;
            let done = Instant::now();
            let resp = match res {
                Err(_) => Err(http1::Failure::from(Outcome::Timeout)),
                Ok(res) => res,
            };
            match resp {
                Err(f) if f.stale && !retried => {
                    // The server dropped an idle keep-alive connection: reconnect and resend once.
                    retried = true;
                    self.drop_conn(w);
                    continue;
                }
                Err(f) => {
                    self.drop_conn(w);
                    self.backoff.fail();
                    record(w, r.stat, failed(f.outcome, sent));
                    return false;
                }
                Ok(resp) => {
                    self.backoff.reset();
                    let service = done - sent_at;
                    let Some(Conn::Http1(conn)) = self.conn.as_ref() else {
                        return false;
                    };
                    let (outcome, passed, failed) =
                        judge_http1(&mut self.vars, r, conn, &resp, service);
                    record(
                        w,
                        r.stat,
                        Record {
                            outcome,
                            passed,
                            failed,
                            sent,
                            received: resp.received,
                            timing: Some((done.saturating_duration_since(intended), service)),
                        },
                    );
                    if !resp.keep_alive {
                        self.drop_conn(w);
                    }
                    return true;
                }
            }
        }
    }

    /// One HTTP/2 request on the group's connection; false when it failed.
    async fn request_h2(
        &mut self,
        w: &WorkerCx,
        slot: &Slot,
        r: &CRequest,
        h2: &H2Request,
        intended: Instant,
    ) -> bool {
        let sc = &w.shared.scenario;
        let CKind::Http2 { streams, base } = &sc.kind else {
            record(w, r.stat, failed(Outcome::Protocol, 0));
            return false;
        };
        let group = w.h2_group(slot.id, *streams);
        if let Some(at) = self.backoff.not_before
            && !group.is_open()
        {
            tokio::time::sleep_until(at).await;
        }
        let mut sender = match w.h2_sender(&group, slot.id).await {
            Ok(s) => s,
            Err(o) => {
                self.backoff.fail();
                record(w, r.stat, failed(o, 0));
                return false;
            }
        };
        self.conn = Some(Conn::Http2(group.clone()));
        let cx = render_cx(w, slot, self.iteration, &self.vars, &self.rows);
        self.out.clear();
        self.out.extend_from_slice(base.as_bytes());
        h2.path.render(&mut self.out, &cx);
        let mut builder = hyper::Request::builder()
            .method(h2.method.clone())
            .uri(self.out.as_slice());
        let mut sent = self.out.len() as u64;
        for (name, value) in &h2.headers {
            self.scratch.clear();
            value.render(&mut self.scratch, &cx);
            sent += (name.as_str().len() + self.scratch.len()) as u64;
            builder = builder.header(name, self.scratch.as_slice());
        }
        let body = match &h2.body {
            Some(t) => {
                self.scratch.clear();
                t.render(&mut self.scratch, &cx);
                Bytes::copy_from_slice(&self.scratch)
            }
            None => Bytes::new(),
        };
        sent += body.len() as u64;
        let Ok(req) = builder.body(Full::new(body)) else {
            // A rendered path or header value HTTP cannot carry.
            record(w, r.stat, failed(Outcome::Protocol, 0));
            return true;
        };
        let sent_at = Instant::now();
        let res = http2::exchange(&mut sender.send, req, r.timeout).await;
        let done = Instant::now();
        match res {
            Err(o) => {
                // A stream that timed out leaves the connection usable; anything else ends it.
                if o != Outcome::Timeout && group.broken(sender.generation) {
                    w.active.set(w.active.get() - 1);
                }
                self.backoff.fail();
                record(w, r.stat, failed(o, sent));
                false
            }
            Ok(resp) => {
                self.backoff.reset();
                let service = done - sent_at;
                let (outcome, passed, failed) = judge(
                    &mut self.vars,
                    &r.extract,
                    &r.check,
                    r.needs_json,
                    Some(resp.status.as_u16()),
                    &resp.body,
                    &|n| resp.header(n),
                    service,
                );
                record(
                    w,
                    r.stat,
                    Record {
                        outcome,
                        passed,
                        failed,
                        sent,
                        received: resp.received,
                        timing: Some((done.saturating_duration_since(intended), service)),
                    },
                );
                true
            }
        }
    }

    /// A `send` and/or `expect` step; false when the iteration cannot go on.
    async fn message(
        &mut self,
        w: &WorkerCx,
        slot: &Slot,
        m: &CMessage,
        intended: Instant,
    ) -> bool {
        if let Err(o) = self.ensure_conn(w, slot).await {
            record(w, m.stat, failed(o, 0));
            return false;
        }
        let mut sent = 0u64;
        let started = Instant::now();
        if let Some(p) = &m.send {
            let cx = render_cx(w, slot, self.iteration, &self.vars, &self.rows);
            self.scratch.clear();
            p.body.render(&mut self.scratch, &cx);
            let written = match self.conn.as_mut() {
                Some(Conn::Ws(c)) => c.send(p.opcode, &self.scratch, &mut self.out).await,
                Some(Conn::Tcp(c)) => c
                    .send(&self.scratch)
                    .await
                    .map(|_| self.scratch.len() as u64),
                Some(Conn::Udp(c)) => c
                    .send(&self.scratch, &w.scratch)
                    .await
                    .map(|_| self.scratch.len() as u64),
                _ => Err(Outcome::Protocol),
            };
            match written {
                Ok(n) => sent = n,
                Err(o) => {
                    if !matches!(self.conn, Some(Conn::Udp(_))) {
                        self.drop_conn(w);
                        self.backoff.fail();
                    }
                    record(w, m.stat, failed(o, 0));
                    return false;
                }
            }
        }
        let sent_at = if m.send.is_some() {
            Instant::now()
        } else {
            started
        };
        let Some(e) = &m.expect else {
            // Fire and forget: done once written.
            let done = Instant::now();
            record(
                w,
                m.stat,
                Record {
                    outcome: Outcome::Ok,
                    passed: 0,
                    failed: 0,
                    sent,
                    received: 0,
                    timing: Some((done.saturating_duration_since(intended), done - started)),
                },
            );
            return true;
        };
        let deadline = Instant::now() + e.timeout;
        let beat = w.heartbeat();
        let tcp_before = match &self.conn {
            Some(Conn::Tcp(c)) => c.received,
            _ => 0,
        };
        let (got, received) = match self.conn.as_mut() {
            Some(Conn::Ws(c)) => loop {
                // Everything read while waiting counts: skipped messages, frames, pings.
                let before = c.received;
                match c.recv(&w.scratch, beat, Some(deadline), None).await {
                    Ok(Some(msg)) => {
                        let json: Option<serde_json::Value> = if m.needs_json {
                            serde_json::from_slice(msg.payload).ok()
                        } else {
                            None
                        };
                        if !e.matcher.matches(msg.opcode, msg.payload, json.as_ref()) {
                            continue;
                        }
                        let done = Instant::now();
                        let verdict = judge_parsed(
                            &mut self.vars,
                            &m.extract,
                            &m.check,
                            json.as_ref(),
                            None,
                            msg.payload,
                            &|_| None,
                            done - sent_at,
                        );
                        break (Ok((verdict, done)), c.received - before);
                    }
                    Ok(None) => break (Err(Outcome::Timeout), 0),
                    Err(o) => break (Err(o), 0),
                }
            },
            Some(Conn::Tcp(c)) => match c.reply(&e.framing, deadline).await {
                Ok(range) => {
                    let read = c.received - tcp_before;
                    let done = Instant::now();
                    let body = &c.bytes()[range];
                    let verdict = judge(
                        &mut self.vars,
                        &m.extract,
                        &m.check,
                        m.needs_json,
                        None,
                        body,
                        &|_| None,
                        done - sent_at,
                    );
                    (Ok((verdict, done)), read)
                }
                Err(o) => (Err(o), 0),
            },
            Some(Conn::Udp(c)) => match c.recv(&w.scratch, deadline).await {
                Ok(n) => {
                    let done = Instant::now();
                    let buf = w.scratch.borrow();
                    let verdict = judge(
                        &mut self.vars,
                        &m.extract,
                        &m.check,
                        m.needs_json,
                        None,
                        &buf[..n],
                        &|_| None,
                        done - sent_at,
                    );
                    (Ok((verdict, done)), n as u64)
                }
                Err(o) => (Err(o), 0),
            },
            _ => (Err(Outcome::Protocol), 0),
        };
        match got {
            Ok(((outcome, passed, failed), done)) => {
                self.backoff.reset();
                record(
                    w,
                    m.stat,
                    Record {
                        outcome,
                        passed,
                        failed,
                        sent,
                        received,
                        timing: Some((done.saturating_duration_since(intended), done - sent_at)),
                    },
                );
                true
            }
            Err(o) => {
                record(w, m.stat, failed(o, sent));
                match (&self.conn, o) {
                    // A lost datagram, or a WebSocket reply that never came: the connection
                    // itself is fine (unless a pong or heartbeat write stalled meanwhile).
                    (Some(Conn::Udp(_)), _) => {}
                    (Some(Conn::Ws(c)), Outcome::Timeout) if !c.is_broken() => {}
                    _ => {
                        self.drop_conn(w);
                        self.backoff.fail();
                    }
                }
                false
            }
        }
    }

    /// Listens on the WebSocket until the step's time is up (or the user is retired).
    async fn listen(&mut self, w: &WorkerCx, slot: &Slot, l: &CListen) -> bool {
        if let Err(o) = self.ensure_conn(w, slot).await {
            record(w, l.stat, failed(o, 0));
            return false;
        }
        let until = Instant::now() + l.duration;
        let beat = w.heartbeat();
        let Some(Conn::Ws(c)) = self.conn.as_mut() else {
            record(w, l.stat, failed(Outcome::Protocol, 0));
            return false;
        };
        loop {
            match c
                .recv(&w.scratch, beat, Some(until), Some(&slot.notify))
                .await
            {
                Ok(Some(msg)) => {
                    let arrived = SystemTime::now();
                    let push = l.timestamp.as_ref().and_then(|(path, nanos)| {
                        let json: serde_json::Value = serde_json::from_slice(msg.payload).ok()?;
                        let ts = path.query(&json).first()?.as_f64()?;
                        let arrived_ns = arrived
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .ok()?
                            .as_nanos() as f64;
                        let late = arrived_ns - ts * nanos;
                        // A clock behind the server's is not a negative latency: not recorded.
                        (late >= 0.0).then(|| Duration::from_nanos(late as u64))
                    });
                    record(
                        w,
                        l.stat,
                        Record {
                            outcome: Outcome::Ok,
                            passed: 0,
                            failed: 0,
                            sent: 0,
                            received: msg.payload.len() as u64,
                            timing: push.map(|p| (p, p)),
                        },
                    );
                }
                // Retired: the iteration ends here.
                Ok(None) => return false,
                Err(Outcome::Timeout) => return true,
                Err(o) => {
                    record(w, l.stat, failed(o, 0));
                    self.lost_in_step(w);
                    return false;
                }
            }
        }
    }

    /// The connection failed inside a step (already recorded there): dropped, backed off.
    fn lost_in_step(&mut self, w: &WorkerCx) {
        self.drop_conn(w);
        self.backoff.fail();
    }
}

/// Status, extraction and checks of an HTTP/1.1 response: (outcome, passed, failed).
fn judge_http1(
    vars: &mut [Vec<u8>],
    r: &CRequest,
    conn: &http1::Conn,
    resp: &Response,
    service: Duration,
) -> (Outcome, u64, u64) {
    let head = conn.head(resp);
    judge(
        vars,
        &r.extract,
        &r.check,
        r.needs_json,
        Some(resp.status),
        conn.body(resp),
        &|name| http1::header(head, name),
        service,
    )
}

/// Extraction and checks of what arrived (a response body or a message): (outcome, checks
/// passed, checks failed). `status` only for HTTP.
#[allow(clippy::too_many_arguments)]
fn judge<'b>(
    vars: &mut [Vec<u8>],
    extract: &[CExtract],
    check: &CCheck,
    needs_json: bool,
    status: Option<u16>,
    body: &[u8],
    header: &dyn Fn(&str) -> Option<&'b [u8]>,
    service: Duration,
) -> (Outcome, u64, u64) {
    let json: Option<serde_json::Value> = if needs_json {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    judge_parsed(
        vars,
        extract,
        check,
        json.as_ref(),
        status,
        body,
        header,
        service,
    )
}

#[allow(clippy::too_many_arguments)]
fn judge_parsed<'b>(
    vars: &mut [Vec<u8>],
    extract: &[CExtract],
    check: &CCheck,
    json: Option<&serde_json::Value>,
    status: Option<u16>,
    body: &[u8],
    header: &dyn Fn(&str) -> Option<&'b [u8]>,
    service: Duration,
) -> (Outcome, u64, u64) {
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut tally = |ok: bool| if ok { passed += 1 } else { failed += 1 };
    let status_listed = match (&check.status, status) {
        (Some(s), Some(code)) => Some(s.contains(&code)),
        _ => None,
    };
    if let Some(listed) = status_listed {
        tally(listed);
    }
    let mut outcome = match status {
        _ if status_listed == Some(true) => Outcome::Ok,
        Some(400..=499) => Outcome::Http4xx,
        Some(500..) => Outcome::Http5xx,
        _ => Outcome::Ok,
    };
    let mut extract_failed = false;
    for e in extract {
        let slot = &mut vars[e.slot];
        slot.clear();
        let found = match &e.source {
            ExtractSource::JsonPath(p) => json
                .and_then(|j| p.query(j).first())
                .map(|v| match v {
                    serde_json::Value::String(s) => slot.extend_from_slice(s.as_bytes()),
                    other => slot.extend_from_slice(other.to_string().as_bytes()),
                })
                .is_some(),
            ExtractSource::Regex(re) => capture(re, body)
                .map(|c| slot.extend_from_slice(c))
                .is_some(),
            ExtractSource::Header { name, regex } => header(name)
                .and_then(|v| match regex {
                    Some(re) => capture(re, v),
                    None => Some(v),
                })
                .map(|c| slot.extend_from_slice(c))
                .is_some(),
        };
        extract_failed |= !found;
    }
    if let Some(f) = &check.body_contains {
        tally(f.find(body).is_some());
    }
    for (path, want) in &check.json {
        let got = json.and_then(|j| path.query(j).first().cloned());
        tally(got.as_ref() == Some(want));
    }
    if let Some(max) = check.max_latency {
        tally(service <= max);
    }
    if outcome == Outcome::Ok && extract_failed {
        outcome = Outcome::ExtractFailed;
    }
    if outcome == Outcome::Ok && failed > 0 {
        outcome = Outcome::CheckFailed;
    }
    (outcome, passed, failed)
}

fn capture<'a>(re: &regex::bytes::Regex, hay: &'a [u8]) -> Option<&'a [u8]> {
    let c = re.captures(hay)?;
    c.get(1).or_else(|| c.get(0)).map(|m| m.as_bytes())
}
