//! One worker thread: a single-threaded tokio runtime that owns a share of the users, paces
//! the open model at absolute instants, follows assignment changes, and ships its
//! measurements once a second. Nothing here is shared with other threads but the channels.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assignment::Assignment;
use crate::engine::timer::PreciseTimer;
use crate::engine::user::{self, Shared, Slot, WorkerCx};
use crate::plan::Plan;
use crate::stats::Delta;

pub use stampede_api::results::Report;

pub struct WorkerInit {
    pub index: usize,
    pub count: usize,
    pub shared: Arc<Shared>,
    pub engine_start: Instant,
    pub gate: Arc<StartGate>,
    pub assignment: watch::Receiver<Arc<Assignment>>,
    pub reports: mpsc::Sender<Report>,
    pub stop: CancellationToken,
    /// Cuts the end-of-test drain short (see `StopHandle::abort`).
    pub abort: CancellationToken,
    /// (stride, offset) of `{{ vu.id }}`, see `EngineOptions`.
    pub vu_ids: (u64, u64),
    /// See `EngineOptions::seed`.
    pub seed: u64,
    /// See `EngineOptions::run_from`.
    pub run_from: Option<Instant>,
}

/// Decides the instant the plan starts: a fixed `startAt`, or the moment the last worker's
/// initial users are connected and through `onStart`, so no iteration is scheduled onto
/// users that cannot exist yet (k6 pre-allocates VUs for the same reason).
#[derive(Debug)]
pub struct StartGate {
    waiting: AtomicUsize,
    t0: watch::Sender<Option<Instant>>,
}

impl StartGate {
    pub fn new(workers: usize, start_at: Option<Instant>) -> StartGate {
        StartGate {
            waiting: AtomicUsize::new(if start_at.is_some() { 0 } else { workers }),
            t0: watch::Sender::new(start_at),
        }
    }

    fn ready(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.t0.send_replace(Some(Instant::now()));
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.t0.subscribe()
    }
}

/// How often the worker re-checks the connection target when no iteration is due.
const CONTROL_TICK: Duration = Duration::from_millis(50);
/// The pacer wakes at most this often and then dispatches everything due. Below 10,000
/// iterations/s per thread every iteration starts on its instant; above, one may start up to
/// this late, and the lateness stays inside latency-from-intended. Why: a sleep/wake cycle
/// (timer reprogram, epoll, context switch) cost ~17 µs of CPU on these VMs, so waking for
/// every iteration at 50,000/s used a whole core and dropped 0.4% of iterations; spinning
/// instead cost as much in `epoll_wait(0)`. oha and wrk2 pace on a 1 ms timer.
const MIN_WAKE_GAP: Duration = Duration::from_micros(100);
/// How long users may take to finish in-flight work after the end, at least: a scenario
/// whose steps may wait longer for an answer drains for that long (see `drain_grace`).
const DRAIN_GRACE: Duration = Duration::from_secs(15);
/// How often the drain checks whether its users are done.
const DRAIN_POLL: Duration = Duration::from_millis(10);

fn drain_grace(shared: &Shared) -> Duration {
    DRAIN_GRACE.max(shared.scenario.longest_timeout() + Duration::from_secs(1))
}

pub fn spawn(init: WorkerInit) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("stampede-worker-{}", init.index))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(init));
        })
}

/// The open model's clock for one worker: it fires its lane of the whole test's schedule
/// (see `Lanes`), so the iterations of every worker of every runner add up to the plan.
struct Pacer {
    /// This worker's share: its users and its part of the rate.
    plan: Plan,
    /// The whole schedule its lane is part of.
    schedule: Plan,
    lane: u64,
    lanes: u64,
    /// The next iteration number of the whole schedule this worker fires.
    next_k: u64,
    /// When (seconds into the plan) it last fired one, so a new plan never fires it again.
    last_fired: Option<f64>,
}

impl Pacer {
    /// The pacer of worker `index` of `count` for assignment `a` at `elapsed` seconds: a
    /// new plan (a rate change, a re-split) applies from the next instant of the new
    /// schedule, and nothing before `elapsed` is replayed.
    fn new(
        a: &Assignment,
        index: usize,
        count: usize,
        elapsed: f64,
        last_fired: Option<f64>,
    ) -> Pacer {
        let share = a.share(index, count);
        let mut p = Pacer {
            plan: Plan::new(&share),
            schedule: Plan::new(share.schedule()),
            lane: share.lanes.index,
            lanes: share.lanes.count.max(1),
            next_k: 0,
            last_fired,
        };
        p.align(elapsed);
        p
    }

    /// Moves to this lane's first iteration not yet due at `elapsed` (nor fired already).
    fn align(&mut self, elapsed: f64) {
        let done = self.schedule.count_at(elapsed);
        let m = ((done - self.lane as f64) / self.lanes as f64)
            .ceil()
            .max(0.0);
        self.next_k = self.lane + (m as u64) * self.lanes;
        if let Some(last) = self.last_fired
            && self.due().is_some_and(|t| t <= last)
        {
            self.next_k += self.lanes;
        }
    }

    /// Seconds into the plan at which the next iteration fires; `None` past the end.
    fn due(&self) -> Option<f64> {
        self.schedule.time_of(self.next_k as f64)
    }

    fn fired(&mut self, at: f64) {
        self.last_fired = Some(at);
        self.next_k += self.lanes;
    }
}

/// `spec.connectRate` as this worker's share: new connections per second, in proportion to
/// the users it holds at its peak.
fn connect_pace(
    shared: &Shared,
    a: &Assignment,
    index: usize,
    count: usize,
) -> Option<ConnectPace> {
    let rate = shared.scenario.connect_rate?;
    let mine = a.share(index, count).peak_connections() as f64;
    let all = shared.scenario.test_peak.max(1) as f64;
    Some(ConnectPace::new(rate * mine / all))
}

/// A token bucket for new users: tokens accrue at the rate, up to a tenth of a second's worth
/// (so a pause in adding users does not turn into a storm).
#[derive(Debug)]
struct ConnectPace {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl ConnectPace {
    fn new(rate: f64) -> ConnectPace {
        ConnectPace {
            rate: rate.max(1e-3),
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    /// How many of `want` new users may start now.
    fn take(&mut self, now: Instant, want: u64) -> u64 {
        let cap = (self.rate * 0.1).max(1.0);
        self.tokens = (self.tokens
            + self.rate * now.saturating_duration_since(self.last).as_secs_f64())
        .min(cap);
        self.last = now;
        let n = (self.tokens.floor() as u64).min(want);
        self.tokens -= n as f64;
        n
    }

    /// When the next user may start, once the bucket is empty.
    fn next(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.last + Duration::from_secs_f64(missing / self.rate)
    }
}

async fn run(init: WorkerInit) {
    let WorkerInit {
        index,
        count,
        shared,
        engine_start,
        gate,
        mut assignment,
        reports,
        stop,
        abort,
        vu_ids,
        seed,
        run_from,
    } = init;
    let steps = shared.scenario.step_names.len();
    let first = assignment.borrow_and_update().clone();
    let plan = Plan::new(&first.share(index, count));
    let shared_for_pace = shared.clone();
    let mut t0_rx = gate.subscribe();
    let local = shared.scenario.kind.local();
    let w = Rc::new(WorkerCx {
        shared,
        stats: RefCell::new(Delta::new(steps)),
        active: Cell::new(0),
        idle: RefCell::new(std::collections::VecDeque::new()),
        backlog: RefCell::new(std::collections::VecDeque::new()),
        backlog_limit: Cell::new(0),
        open: plan.is_open(),
        t0: Cell::new(*t0_rx.borrow_and_update()),
        running: Cell::new(false),
        started: tokio::sync::Notify::new(),
        ready: Cell::new(0),
        workers: count as u64,
        vu_ids,
        seed,
        scratch: RefCell::new(vec![0u8; user::SCRATCH_BYTES].into_boxed_slice()),
        local,
    });
    let initial_users = plan.connections_at(0.0);
    let mut pace = connect_pace(&shared_for_pace, &first, index, count);
    let mut gate_passed = false;
    // Joining a running test: the schedule goes on from the join instead of replaying the
    // past (which the other runners carried).
    let from = match (w.t0.get(), run_from) {
        (Some(t0), Some(from)) if from > t0 => from.duration_since(t0).as_secs_f64(),
        _ => 0.0,
    };
    let mut pacer = Pacer::new(&first, index, count, from, None);
    // The first pass may find iterations due (a runner joining, a slow thread start) before
    // any control tick has sized the backlog; they wait for users instead of being dropped.
    w.backlog_limit.set(backlog_room(
        &pacer.plan,
        w.elapsed_at(Instant::now()),
        initial_users,
    ));
    let mut users: Vec<(Rc<Slot>, JoinHandle<()>)> = Vec::new();
    let mut next_id = index as u64;
    let mut reporter = Reporter {
        index,
        engine_start,
        reports,
        pending: None,
        steps,
        last_second: 0,
    };
    let mut report_at = engine_start + Duration::from_secs(1);
    let mut control_at = Instant::now();
    // Users not yet retired; kept as a count so the hot loop never walks the user list.
    let mut live: u64 = 0;

    let mut timer = PreciseTimer::new();
    let coarse_sleep = tokio::time::sleep_until(control_at);
    tokio::pin!(coarse_sleep);
    loop {
        let now = Instant::now();
        let t0 = w.t0.get();
        let elapsed = w.elapsed_at(now);
        if !w.running.get() && t0.is_some_and(|t| now >= t) {
            w.running.set(true);
            w.started.notify_waiters();
        }
        if !gate_passed && w.ready.get() >= initial_users {
            gate_passed = true;
            gate.ready();
        }
        // Fire every iteration that is due (the plan yields none past its end).
        let mut next_due = None;
        if let Some(t0) = t0
            && w.open
        {
            while let Some(t) = pacer.due() {
                let at = t0 + Duration::from_secs_f64(t);
                if at > now {
                    next_due = Some(at);
                    break;
                }
                pacer.fired(t);
                dispatch(&w, at);
            }
        }
        if w.running.get() && elapsed >= pacer.plan.total() {
            break;
        }
        // Bookkeeping runs on control ticks only, never per dispatched iteration.
        if now >= control_at || now >= report_at {
            let mut next_control = now + CONTROL_TICK;
            let want = pacer.plan.connections_at(elapsed);
            if live < want {
                let start = match pace.as_mut() {
                    Some(p) => p.take(now, want - live),
                    None => want - live,
                };
                for _ in 0..start {
                    let slot = Rc::new(Slot::new(next_id));
                    next_id += count as u64;
                    let h = tokio::task::spawn_local(user::run(w.clone(), slot.clone()));
                    users.push((slot, h));
                }
                live += start;
                if live < want
                    && let Some(p) = &pace
                {
                    // Come back when the next user may start, not a whole tick later.
                    next_control = next_control.min(p.next().max(now + Duration::from_millis(1)));
                }
            } else if live > want {
                // Retire the newest users first; they finish their iteration and run onStop.
                let mut extra = live - want;
                for (s, _) in users.iter().rev() {
                    if extra == 0 {
                        break;
                    }
                    if !s.retire.get() {
                        s.retire();
                        extra -= 1;
                    }
                }
                live = want;
            }
            w.backlog_limit
                .set(backlog_room(&pacer.plan, elapsed, live));
            if users.len() as u64 > live {
                users.retain(|(_, h)| !h.is_finished());
            }
            if now >= report_at {
                reporter.send(&w, &pacer.plan, elapsed, false);
                report_at += Duration::from_secs(1);
            }
            control_at = next_control;
        }
        // Instants that must be hit exactly: the next iteration (but no sooner than
        // MIN_WAKE_GAP after the last wake), the start, the end.
        let mut precise = next_due.map(|d| d.max(now + MIN_WAKE_GAP));
        if let Some(t0) = t0 {
            let edge = if now < t0 {
                t0
            } else {
                t0 + Duration::from_secs_f64(pacer.plan.total())
            };
            precise = Some(precise.map_or(edge, |p| p.min(edge)));
        }
        let coarse = control_at.min(report_at);
        if coarse_sleep.deadline() != coarse {
            coarse_sleep.as_mut().reset(coarse);
        }
        let precise_wait = async {
            match precise {
                Some(at) if at < coarse => timer.sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            changed = t0_rx.changed() => {
                if changed.is_ok() {
                    w.t0.set(*t0_rx.borrow_and_update());
                    w.started.notify_waiters();
                }
            }
            changed = assignment.changed() => {
                if changed.is_err() {
                    break;
                }
                let a = assignment.borrow_and_update().clone();
                pacer = Pacer::new(&a, index, count, elapsed, pacer.last_fired);
                if let Some(p) = pace.as_mut()
                    && let Some(new) = connect_pace(&shared_for_pace, &a, index, count)
                {
                    p.rate = new.rate;
                }
                // Connection changes are applied at once, not at the next tick.
                control_at = Instant::now();
            }
            _ = &mut coarse_sleep => {}
            _ = precise_wait => {}
        }
    }

    // The end: what is still queued never ran; retire everyone, let in-flight requests
    // finish (bounded), then a last report.
    let unrun = std::mem::take(&mut *w.backlog.borrow_mut()).len() as u64;
    w.stats.borrow_mut().dropped += unrun;
    if !gate_passed {
        gate.ready();
    }
    for (s, _) in &users {
        s.retire();
    }
    // The drain reports every second like the load did, so what it completes is shown (and
    // lands in the series) as it happens rather than in one last point.
    let deadline = Instant::now() + drain_grace(&w.shared);
    loop {
        users.retain(|(_, h)| !h.is_finished());
        if users.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= report_at {
            reporter.send(&w, &pacer.plan, w.elapsed_at(now), false);
            report_at += Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = abort.cancelled() => break,
            _ = tokio::time::sleep(DRAIN_POLL) => {}
        }
    }
    // Whoever is still busy is cut off: what they were waiting for counts as interrupted.
    for (s, h) in &users {
        user::interrupt(&w, s);
        h.abort();
    }
    reporter.send(&w, &pacer.plan, w.elapsed_at(Instant::now()), true);
    reporter.flush_blocking().await;
}

/// How many iterations may wait for a free user: a second of rate (`MAX_QUEUE_WAIT`), at
/// least one per user.
fn backlog_room(plan: &Plan, elapsed: f64, users: u64) -> usize {
    let second_of_rate = (plan.rate_at(elapsed) * user::MAX_QUEUE_WAIT.as_secs_f64()).ceil();
    (users as usize).max(second_of_rate as usize)
}

/// Hands an iteration to an idle user; when every user is busy it waits in the backlog (its
/// wait counts in latency-from-intended); when that is full it is dropped.
fn dispatch(w: &WorkerCx, at: Instant) {
    let mut idle = w.idle.borrow_mut();
    while let Some(slot) = idle.pop_front() {
        if slot.retire.get() {
            continue;
        }
        slot.job.set(Some(at));
        slot.notify.notify_one();
        return;
    }
    let mut backlog = w.backlog.borrow_mut();
    if backlog.len() < w.backlog_limit.get() {
        backlog.push_back(at);
    } else {
        w.stats.borrow_mut().dropped += 1;
    }
}

struct Reporter {
    index: usize,
    engine_start: Instant,
    reports: mpsc::Sender<Report>,
    /// A report the collector had no room for yet; merged into the next one, never dropped.
    pending: Option<Report>,
    steps: usize,
    last_second: u64,
}

impl Reporter {
    fn send(&mut self, w: &WorkerCx, plan: &Plan, elapsed: f64, last: bool) {
        let mut delta = std::mem::replace(&mut *w.stats.borrow_mut(), Delta::new(self.steps));
        delta.reasons = crate::protocol::reason::take();
        delta.active_connections = w.active.get();
        // Nothing is planned before the start or after the end (the drain).
        let planned = w.t0.get().is_some_and(|t| Instant::now() >= t) && elapsed < plan.total();
        delta.target_rate = if planned { plan.rate_at(elapsed) } else { 0.0 };
        delta.target_connections = if elapsed < plan.total() {
            plan.connections_at(elapsed)
        } else {
            0
        };
        // A periodic report at tick k covers [k-1, k); the last one covers the rest.
        let since = Instant::now()
            .saturating_duration_since(self.engine_start)
            .as_secs_f64();
        let second = if last {
            self.last_second + 1
        } else {
            (since.round() as u64).max(1)
        };
        self.last_second = second;
        let mut report = Report {
            worker: self.index,
            second,
            delta,
            last,
        };
        if let Some(p) = self.pending.take() {
            let mut merged = p.delta;
            let gauges = (
                report.delta.active_connections,
                report.delta.target_rate,
                report.delta.target_connections,
            );
            merged.add(&report.delta);
            (
                merged.active_connections,
                merged.target_rate,
                merged.target_connections,
            ) = gauges;
            report.delta = merged;
        }
        match self.reports.try_send(report) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => self.pending = Some(r),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    async fn flush_blocking(&mut self) {
        if let Some(p) = self.pending.take() {
            let _ = self.reports.send(p).await;
        }
    }
}
