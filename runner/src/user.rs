//! One virtual user: its own connection, opened before it sends and reopened with backoff,
//! its extracted values and data rows, and the steps it runs.
//! Hot path: renders into reused buffers and records into the worker's stats without locks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http1::{self, Conn, Response};
use crate::scenario::{CRequest, CStep, CompiledScenario, ExtractSource};
use crate::stats::{Delta, Outcome};
use crate::template::RenderCtx;

/// What a whole test shares, read-only, across threads.
#[derive(Debug)]
pub struct Shared {
    pub scenario: CompiledScenario,
    pub cursors: crate::data::Cursors,
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
}

/// How long an open-model iteration may wait for a free user before it is dropped. Arrivals
/// that find every user busy wait, as real clients would, and the wait is part of their
/// latency-from-intended. Bounding the wait (not the count) is what let 50 users hold
/// 100,000/s through the target's 2–4 ms stalls: a one-per-user bound dropped 1% there.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

impl WorkerCx {
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
}

impl Slot {
    pub fn new(id: u64) -> Slot {
        Slot {
            id,
            notify: Notify::new(),
            job: Cell::new(None),
            retire: Cell::new(false),
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

struct User {
    conn: Option<Conn>,
    backoff: Backoff,
    vars: Vec<Vec<u8>>,
    rows: Vec<usize>,
    unique: Vec<Option<usize>>,
    iteration: u64,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
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
    };
    // Connect before anything is sent, retrying until connected or retired.
    let mut counted_ready = false;
    while !slot.retire.get() {
        if u.connect(&w).await.is_ok() {
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
            slot.notify.notified().await;
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
        u.run_steps(&w, &slot, &sc.on_stop, Instant::now()).await;
    }
    if let Some(c) = u.conn.take() {
        w.active.set(w.active.get() - 1);
        c.shutdown().await;
    }
    w.shared.cursors.give_back(&u.unique);
}

impl User {
    async fn connect(&mut self, w: &WorkerCx) -> Result<(), Outcome> {
        let sc = &w.shared.scenario;
        match Conn::connect(sc.target, sc.connect_timeout).await {
            Ok(c) => {
                self.conn = Some(c);
                w.active.set(w.active.get() + 1);
                w.stats.borrow_mut().connects += 1;
                Ok(())
            }
            Err(o) => {
                self.backoff.fail();
                w.stats.borrow_mut().connect_errors[o as usize] += 1;
                Err(o)
            }
        }
    }

    fn drop_conn(&mut self, w: &WorkerCx) {
        if self.conn.take().is_some() {
            w.active.set(w.active.get() - 1);
        }
    }

    /// Runs `steps` once. A think is cut short when the user is retired; a request that
    /// breaks the connection ends the iteration (the rest would run on nothing).
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
            match step {
                CStep::Think(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(*d) => {}
                        _ = slot.notify.notified() => return,
                    }
                    intended = Instant::now();
                }
                CStep::Request(r) => {
                    if !self.request(w, slot, r, intended).await {
                        return;
                    }
                    intended = Instant::now();
                }
            }
        }
    }

    /// One request; false when the connection broke.
    async fn request(
        &mut self,
        w: &WorkerCx,
        slot: &Slot,
        r: &CRequest,
        intended: Instant,
    ) -> bool {
        let sc = &w.shared.scenario;
        let mut retried = false;
        loop {
            if self.conn.is_none() {
                if let Some(at) = self.backoff.not_before {
                    tokio::time::sleep_until(at).await;
                }
                if let Err(o) = self.connect(w).await {
                    w.stats.borrow_mut().steps[r.stat].outcomes[o as usize] += 1;
                    return false;
                }
            }
            let cx = RenderCtx {
                vu_id: slot.id,
                iteration: self.iteration,
                vars: &self.vars,
                rows: &self.rows,
                data: &sc.data,
            };
            let bytes = r.wire.render(&mut self.out, &mut self.scratch, &cx);
            let sent = bytes.len() as u64;
            let conn = self.conn.as_mut().expect("connected above");
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
                    let mut st = w.stats.borrow_mut();
                    let s = &mut st.steps[r.stat];
                    s.outcomes[f.outcome as usize] += 1;
                    s.bytes_sent += sent;
                    return false;
                }
                Ok(resp) => {
                    self.backoff.reset();
                    let service = done - sent_at;
                    let (outcome, passed, failed) = self.evaluate(r, &resp, service);
                    {
                        let mut st = w.stats.borrow_mut();
                        let s = &mut st.steps[r.stat];
                        s.outcomes[outcome as usize] += 1;
                        s.checks_passed += passed;
                        s.checks_failed += failed;
                        s.bytes_sent += sent;
                        s.bytes_received += resp.received;
                        s.latency
                            .saturating_record(micros(done.saturating_duration_since(intended)));
                        s.service.saturating_record(micros(service));
                    }
                    if !resp.keep_alive {
                        self.drop_conn(w);
                    }
                    return true;
                }
            }
        }
    }

    /// Status, extraction and checks of a response: (outcome, checks passed, checks failed).
    fn evaluate(
        &mut self,
        r: &CRequest,
        resp: &Response,
        service: Duration,
    ) -> (Outcome, u64, u64) {
        let conn = self.conn.as_ref().expect("a response implies a connection");
        let body = conn.body(resp);
        let (mut passed, mut failed) = (0u64, 0u64);
        let mut tally = |ok: bool| if ok { passed += 1 } else { failed += 1 };
        let status_listed = r.check.status.as_ref().map(|s| s.contains(&resp.status));
        if let Some(listed) = status_listed {
            tally(listed);
        }
        let mut outcome = match resp.status {
            _ if status_listed == Some(true) => Outcome::Ok,
            400..=499 => Outcome::Http4xx,
            500.. => Outcome::Http5xx,
            _ => Outcome::Ok,
        };
        let json: Option<serde_json::Value> = if r.needs_json {
            serde_json::from_slice(body).ok()
        } else {
            None
        };
        let mut extract_failed = false;
        for e in &r.extract {
            let slot = &mut self.vars[e.slot];
            slot.clear();
            let found = match &e.source {
                ExtractSource::JsonPath(p) => json
                    .as_ref()
                    .and_then(|j| p.query(j).first())
                    .map(|v| match v {
                        serde_json::Value::String(s) => slot.extend_from_slice(s.as_bytes()),
                        other => slot.extend_from_slice(other.to_string().as_bytes()),
                    })
                    .is_some(),
                ExtractSource::Regex(re) => capture(re, body)
                    .map(|c| slot.extend_from_slice(c))
                    .is_some(),
                ExtractSource::Header { name, regex } => http1::header(conn.head(resp), name)
                    .and_then(|v| match regex {
                        Some(re) => capture(re, v),
                        None => Some(v),
                    })
                    .map(|c| slot.extend_from_slice(c))
                    .is_some(),
            };
            extract_failed |= !found;
        }
        if let Some(f) = &r.check.body_contains {
            tally(f.find(body).is_some());
        }
        for (path, want) in &r.check.json {
            let got = json.as_ref().and_then(|j| path.query(j).first().cloned());
            tally(got.as_ref() == Some(want));
        }
        if let Some(max) = r.check.max_latency {
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
}

fn capture<'a>(re: &regex::bytes::Regex, hay: &'a [u8]) -> Option<&'a [u8]> {
    let c = re.captures(hay)?;
    c.get(1).or_else(|| c.get(0)).map(|m| m.as_bytes())
}
