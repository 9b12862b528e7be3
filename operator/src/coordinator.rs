//! The coordinator: runners register over gRPC with the test's token, the budget is split
//! across the live runners (exactly, with the api's split), every change (a runner joining or
//! leaving, a new spec) is pushed as a new assignment revision, and cumulative snapshots are
//! kept per runner session so a runner that restarts or reconnects is neither lost nor
//! double counted. Backend-agnostic: where runners live is the backend's business.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use stampede_api::Assignment;
use stampede_api::instant::{from_unix_ms, unix_ms};
use stampede_api::proto::coordinator_server::Coordinator as CoordinatorApi;
use stampede_api::proto::{
    self, CoordinatorMessage, RunnerMessage, Snapshot, coordinator_message, runner_message,
};
use stampede_api::split::split_budget_capped;
use stampede_api::stats::Delta;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::merge::{Histograms, merge, merge_overall, step_names};

/// HTTP/2 pings on runner streams: a runner on a dead node or behind a partition shows no
/// closed connection, and pings find it. The timeout is generous because a runner process
/// starved of CPU on a loaded machine (2 shared cores in CI) can miss a 2 s deadline and lose
/// its stream for nothing; a runner that dies closes its socket and is gone at once anyway.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(6);

/// A runner whose stream broke before its final snapshot is waited for this long before the
/// test counts as finished without it: the agent reconnects within its backoff (at most
/// 2 s) and re-sends that snapshot under the same session.
const RECONNECT_GRACE: Duration = Duration::from_secs(3);

/// What the whole test asks for.
#[derive(Clone, Debug)]
pub struct TestSpec {
    pub name: String,
    /// `{{ run.id }}`, fixed for the run's life: a new spec keeps the first one.
    pub run_id: String,
    pub yaml: String,
    pub budget: Assignment,
    /// The most connections one runner may hold (`spec.runner.maxConnections`).
    pub max_connections: Option<u64>,
}

struct Live {
    session: String,
    /// Which gRPC stream this is: a runner that reconnects opens a new one under the same
    /// session, and the old stream's end must not retire the new one.
    stream: u64,
    tx: mpsc::Sender<Result<CoordinatorMessage, Status>>,
    acked: u64,
    /// When this runner last reported (or registered): how stale the merged figures may be.
    heard: Instant,
    /// It registered after the budget had been split with a start time: the others ran its
    /// share meanwhile (see `Assignment::run_from_unix_ms`).
    joined_late: bool,
}

/// Every session's latest snapshot merged: counters summed, histograms added.
#[derive(Debug)]
pub struct Merged {
    /// Step names in order of first appearance; `total.steps` follows it.
    pub names: Vec<String>,
    pub total: Delta,
    /// `State::snapshots` when this was computed.
    generation: u64,
}

/// When a revision was issued and when the last live runner acknowledged it.
#[derive(Clone, Debug)]
pub struct Propagation {
    pub revision: u64,
    pub issued: Instant,
    pub reached_all: Option<Instant>,
    pub runners: usize,
}

/// A runner joined or left the live set: what a backend shows its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunnerEvent {
    Connected { index: u32, session: String },
    Disconnected { index: u32, session: String },
}

/// When the first iterations fire.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// At this instant (`spec.startAt`, or a time the backend chose).
    At(SystemTime),
    /// This long after the assignments are released: for runners whose start-up time nobody
    /// can predict (pods being scheduled, images pulled).
    AfterRelease(Duration),
}

struct State {
    spec: TestSpec,
    token: String,
    start: Start,
    start_at_unix_ms: i64,
    revision: u64,
    live: BTreeMap<u32, Live>,
    /// Runners whose stream ended before they reported finished: session and when, until
    /// they register again (see `RECONNECT_GRACE`).
    gone: BTreeMap<u32, (String, Instant)>,
    /// Latest cumulative snapshot of every session ever seen, by runner index and session
    /// id (so even two runners that drew the same id stay apart). Shared, so a merge takes
    /// them without copying their histograms.
    results: BTreeMap<(u32, String), (u32, Arc<Snapshot>)>,
    /// Numbers the gRPC streams, see `Live::stream`.
    streams: u64,
    /// Runners joining and leaving, oldest first, until a backend takes them (bounded).
    events: Vec<RunnerEvent>,
    propagation: Vec<Propagation>,
    /// Assignments wait until this many runners are in (or `release` is called), so the first
    /// split is the final one and no user is started only to be retired.
    expected: usize,
    released: bool,
    /// Every runner was told to stop: one that registers now (it was starting or between
    /// two streams) is told to stop too, not handed a budget.
    stopping: bool,
    /// Counts accepted snapshots, so a merge is redone only when something changed.
    snapshots: u64,
    merged: Option<Arc<Merged>>,
    /// `merge_overall` of the same snapshots, with the generation it was computed at.
    overall: Option<(u64, Arc<Delta>)>,
}

/// The shared coordinator; clone freely.
#[derive(Clone)]
pub struct Coordinator {
    state: Arc<Mutex<State>>,
    pub changed: Arc<Notify>,
}

impl Coordinator {
    pub fn new(spec: TestSpec, token: String, start: Start, expected: usize) -> Coordinator {
        Coordinator {
            state: Arc::new(Mutex::new(State {
                spec,
                token,
                start,
                start_at_unix_ms: 0,
                revision: 0,
                live: BTreeMap::new(),
                gone: BTreeMap::new(),
                results: BTreeMap::new(),
                streams: 0,
                events: Vec::new(),
                propagation: Vec::new(),
                expected,
                released: false,
                stopping: false,
                snapshots: 0,
                merged: None,
                overall: None,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new spec (a saved file, a patched LoadTest): every live runner gets a new revision.
    pub fn update_spec(&self, mut spec: TestSpec) -> u64 {
        let mut st = self.lock();
        spec.run_id = std::mem::take(&mut st.spec.run_id);
        st.spec = spec;
        Self::push(&mut st)
    }

    /// A new number of runners: indices at or above it are refused and, if live, stopped and
    /// their budget given to the others.
    pub fn set_expected(&self, expected: usize) {
        let mut st = self.lock();
        if st.expected == expected {
            return;
        }
        st.expected = expected;
        let gone: Vec<u32> = st
            .live
            .keys()
            .copied()
            .filter(|i| *i as usize >= expected)
            .collect();
        for i in &gone {
            Self::stop_one(&mut st, *i);
        }
        Self::push(&mut st);
    }

    /// Drops runner `index` now (its pod is gone or going): the survivors get its budget at
    /// once instead of when its stream finally breaks.
    pub fn evict(&self, index: u32) -> bool {
        let mut st = self.lock();
        if !st.live.contains_key(&index) {
            return false;
        }
        Self::stop_one(&mut st, index);
        Self::push(&mut st);
        drop(st);
        self.changed.notify_waiters();
        true
    }

    fn stop_one(st: &mut State, index: u32) {
        if let Some(live) = st.live.remove(&index) {
            let _ = live.tx.try_send(Ok(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Stop(proto::Stop { now: false })),
            }));
        }
    }

    /// Starts the test again from its beginning (a resumed LoadTest): assignments wait for the
    /// expected runners again; measurements so far are kept and new ones add to them.
    pub fn restart(&self, start: Start) {
        let mut st = self.lock();
        st.start = start;
        st.start_at_unix_ms = 0;
        st.released = false;
        st.stopping = false;
        st.live.clear();
        st.gone.clear();
    }

    /// The token runners must present (the backend's Secret may have been rewritten).
    pub fn set_token(&self, token: String) {
        self.lock().token = token;
    }

    /// When the first iterations fire, once assignments have been released.
    pub fn start_time(&self) -> Option<SystemTime> {
        let st = self.lock();
        from_unix_ms(st.start_at_unix_ms)
    }

    /// The run's `{{ run.id }}`.
    pub fn run_id(&self) -> String {
        self.lock().spec.run_id.clone()
    }

    /// The spec being run.
    pub fn spec(&self) -> TestSpec {
        self.lock().spec.clone()
    }

    /// Sends assignments even if not every expected runner has registered (its deadline).
    pub fn release(&self) {
        let mut st = self.lock();
        if !st.released {
            st.released = true;
            Self::push(&mut st);
        }
    }

    /// Splits the budget across the live runners and sends each its part as a new revision.
    fn push(st: &mut State) -> u64 {
        if !st.released && st.live.len() < st.expected {
            return st.revision;
        }
        st.released = true;
        if st.start_at_unix_ms == 0 {
            let at = match st.start {
                Start::At(t) => t,
                Start::AfterRelease(d) => SystemTime::now() + d,
            };
            // Never 0, which means "not yet".
            st.start_at_unix_ms = unix_ms(at).max(1);
        }
        st.revision += 1;
        let n = st.live.len();
        let now = Instant::now();
        // Only recent revisions matter to anyone; a long test must not grow without bound.
        if st.propagation.len() >= 1000 {
            st.propagation.drain(..500);
        }
        st.propagation.push(Propagation {
            revision: st.revision,
            issued: now,
            reached_all: None,
            runners: n,
        });
        if n == 0 {
            return st.revision;
        }
        let b = &st.spec.budget;
        let stages: Vec<_> = b.stages.iter().map(|s| (s.1, s.2)).collect();
        let shares =
            split_budget_capped(b.connections, b.rate, &stages, n, st.spec.max_connections);
        let now_ms = unix_ms(SystemTime::now());
        let expected = st.expected as u32;
        for (lane, (share, (index, live))) in shares.into_iter().zip(&st.live).enumerate() {
            let a = proto::Assignment {
                revision: st.revision,
                connections: share.connections,
                rate: share.rate,
                stages: b
                    .stages
                    .iter()
                    .zip(&share.stages)
                    .map(|(s, (r, c))| proto::Stage {
                        duration_seconds: s.0,
                        rate: *r,
                        connections: *c,
                    })
                    .collect(),
                duration_seconds: b.duration,
                start_at_unix_ms: st.start_at_unix_ms,
                loadtest_yaml: st.spec.yaml.clone(),
                // Only the first assignment of a runner's run reads it; later ones repeat
                // what is by then in the past.
                run_from_unix_ms: if live.joined_late && now_ms > st.start_at_unix_ms {
                    now_ms
                } else {
                    0
                },
                lane: lane as u32,
                lanes: n as u32,
                whole_rate: b.rate,
                whole_stages: b
                    .stages
                    .iter()
                    .map(|s| proto::Stage {
                        duration_seconds: s.0,
                        rate: s.1,
                        connections: s.2,
                    })
                    .collect(),
                data_part: *index,
                data_parts: expected.max(*index + 1),
                run_id: st.spec.run_id.clone(),
            };
            let msg = CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Assignment(a)),
            };
            // A full channel means that runner is stuck; it gets the next revision instead.
            let _ = live.tx.try_send(Ok(msg));
        }
        st.revision
    }

    fn record_ack(st: &mut State) {
        let min_acked = st.live.values().map(|l| l.acked).min().unwrap_or(0);
        let n = st.live.len();
        for p in st
            .propagation
            .iter_mut()
            .filter(|p| p.reached_all.is_none())
        {
            if n > 0 && min_acked >= p.revision {
                p.reached_all = Some(Instant::now());
                p.runners = n;
            }
        }
    }

    /// Runner arrivals and departures since the last call.
    pub fn take_events(&self) -> Vec<RunnerEvent> {
        std::mem::take(&mut self.lock().events)
    }

    fn note(st: &mut State, e: RunnerEvent) {
        // Nobody reading them (the Kubernetes backend) must not grow memory without bound.
        if st.events.len() >= 1000 {
            st.events.drain(..500);
        }
        st.events.push(e);
    }

    /// Revisions and how fast they reached every live runner.
    pub fn propagation(&self) -> Vec<Propagation> {
        self.lock().propagation.clone()
    }

    /// Live runner indices.
    pub fn live(&self) -> Vec<u32> {
        self.lock().live.keys().copied().collect()
    }

    /// The latest cumulative snapshot of every session.
    pub fn results(&self) -> Vec<(u32, Arc<Snapshot>)> {
        self.lock().results.values().cloned().collect()
    }

    /// Every session's latest snapshot merged, recomputed only when a snapshot arrived since
    /// the last call: the status, `/metrics` and the live table all read the same merge. The
    /// merge runs outside the lock, so runners' snapshots are never held up by it.
    pub fn merged(&self) -> Arc<Merged> {
        let (generation, snaps) = {
            let st = self.lock();
            if let Some(m) = st.merged.as_ref().filter(|m| m.generation == st.snapshots) {
                return m.clone();
            }
            let snaps: Vec<(u32, Arc<Snapshot>)> = st.results.values().cloned().collect();
            (st.snapshots, snaps)
        };
        let names = step_names(&snaps);
        let total = merge(&names, &snaps, Histograms::Latency);
        let m = Arc::new(Merged {
            names,
            total,
            generation,
        });
        let mut st = self.lock();
        if st
            .merged
            .as_ref()
            .is_none_or(|old| old.generation < generation)
        {
            st.merged = Some(m.clone());
        }
        m
    }

    /// Every session's latest snapshot summed as one step (counters, and the latency of all
    /// steps): what the once-a-second series needs, at one histogram per runner instead of
    /// one per runner and step. Cached like `merged`.
    pub fn overall(&self) -> Arc<Delta> {
        let (generation, snaps) = {
            let st = self.lock();
            if let Some((g, d)) = &st.overall
                && *g == st.snapshots
            {
                return d.clone();
            }
            let snaps: Vec<(u32, Arc<Snapshot>)> = st.results.values().cloned().collect();
            (st.snapshots, snaps)
        };
        let total = Arc::new(merge_overall(&snaps));
        let mut st = self.lock();
        if st.overall.as_ref().is_none_or(|(g, _)| *g < generation) {
            st.overall = Some((generation, total.clone()));
        }
        total
    }

    /// How many runners this test wants (`spec.runners`).
    pub fn expected(&self) -> usize {
        self.lock().expected
    }

    /// How long ago the quietest live runner last reported: the lag of the merged figures.
    pub fn snapshot_age(&self) -> Option<Duration> {
        let st = self.lock();
        st.live.values().map(|l| l.heard.elapsed()).max()
    }

    /// Whether every live runner has reported the end of its plan.
    pub fn all_finished(&self) -> bool {
        let st = self.lock();
        let finished = |i: u32, session: &str| {
            st.results
                .get(&(i, session.to_string()))
                .is_some_and(|(_, s)| s.finished)
        };
        !st.live.is_empty()
            && st.live.iter().all(|(i, l)| finished(*i, &l.session))
            // A runner between two streams still has its last figures to send.
            && st.gone.iter().all(|(i, (session, at))| {
                finished(*i, session) || at.elapsed() >= RECONNECT_GRACE
            })
    }

    /// Sends Stop to every live runner: they finish what is in flight (bounded), send their
    /// final snapshot and exit.
    pub fn stop_all(&self) {
        self.send_stop(false);
    }

    /// Sends Stop to every live runner, cutting off what is still in flight (counted as
    /// interrupted): a second Ctrl-C.
    pub fn stop_all_now(&self) {
        self.send_stop(true);
    }

    fn send_stop(&self, now: bool) {
        let mut st = self.lock();
        st.stopping = true;
        for live in st.live.values() {
            let _ = live.tx.try_send(Ok(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Stop(proto::Stop { now })),
            }));
        }
    }

    /// Whether every runner that was told to stop has sent its final snapshot (or gone).
    pub fn all_stopped(&self) -> bool {
        let st = self.lock();
        st.live.iter().all(|(i, l)| {
            l.tx.is_closed()
                || st
                    .results
                    .get(&(*i, l.session.clone()))
                    .is_some_and(|(_, s)| s.finished)
        })
    }

    fn register(
        &self,
        reg: proto::Register,
    ) -> Result<(u64, mpsc::Receiver<Result<CoordinatorMessage, Status>>), Status> {
        let mut st = self.lock();
        // The name first: a runner started for another test would otherwise be told its
        // token is wrong, which sends its user looking in the wrong place.
        if reg.loadtest != st.spec.name {
            return Err(Status::permission_denied(format!(
                "--loadtest {:?}: this coordinator runs LoadTest {:?}",
                reg.loadtest, st.spec.name
            )));
        }
        if !stampede_api::id::same_secret(&reg.token, &st.token) {
            return Err(Status::unauthenticated(format!(
                "wrong token for LoadTest {:?} (STAMPEDE_TOKEN)",
                st.spec.name
            )));
        }
        if reg.index as usize >= st.expected {
            return Err(Status::permission_denied(format!(
                "runner index {} is not wanted: this test has {} runners",
                reg.index, st.expected
            )));
        }
        let (tx, rx) = mpsc::channel(16);
        let session = reg.session.clone();
        st.gone.remove(&reg.index);
        Self::note(
            &mut st,
            RunnerEvent::Connected {
                index: reg.index,
                session: session.clone(),
            },
        );
        st.streams += 1;
        let stream = st.streams;
        let joined_late = st.released && st.start_at_unix_ms > 0;
        let displaced = st.live.insert(
            reg.index,
            Live {
                session: reg.session,
                stream,
                tx,
                acked: 0,
                heard: Instant::now(),
                joined_late,
            },
        );
        // Another process registered under this index (a replacement pod while the old one
        // lingers): the old one stops, or the index would run twice.
        if let Some(old) = displaced.filter(|old| old.session != session) {
            let _ = old.tx.try_send(Ok(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Stop(proto::Stop { now: false })),
            }));
        }
        if st.stopping {
            Self::stop_one(&mut st, reg.index);
            return Ok((stream, rx));
        }
        Self::push(&mut st);
        Ok((stream, rx))
    }

    fn on_snapshot(&self, index: u32, session: &str, snap: Snapshot) {
        let mut st = self.lock();
        if let Some(l) = st.live.get_mut(&index)
            && l.session == session
        {
            l.acked = l.acked.max(snap.revision);
            l.heard = Instant::now();
        }
        // Snapshots are cumulative, so an older one (delayed, repeated, replayed after a
        // reconnect) has no more progress than what is kept: it must not replace it.
        let key = (index, session.to_string());
        let newer = st
            .results
            .get(&key)
            .is_none_or(|(_, kept)| is_newer(&snap, kept));
        if newer {
            st.results.insert(key, (index, Arc::new(snap)));
            st.snapshots += 1;
        }
        Self::record_ack(&mut st);
        drop(st);
        self.changed.notify_waiters();
    }

    fn on_gone(&self, index: u32, session: &str, stream: u64) {
        let mut st = self.lock();
        if st.live.get(&index).is_some_and(|l| l.stream == stream) {
            if let Some(l) = st.live.remove(&index) {
                st.gone.insert(index, (l.session.clone(), Instant::now()));
                Self::note(
                    &mut st,
                    RunnerEvent::Disconnected {
                        index,
                        session: l.session,
                    },
                );
            }
            // The survivors take over the whole budget at once.
            Self::push(&mut st);
        }
        // Its counters stay in the results; its gauges must not: a dead runner's users are
        // gone, and its replacement reports its own.
        if st.live.get(&index).is_none_or(|l| l.session != session) {
            let key = (index, session.to_string());
            if let Some((_, snap)) = st.results.get_mut(&key)
                && snap.active_connections > 0
            {
                Arc::make_mut(snap).active_connections = 0;
                st.snapshots += 1;
            }
        }
        drop(st);
        self.changed.notify_waiters();
    }
}

/// Whether `snap` is later than `kept` from the same session. Runners number their snapshots;
/// from one that does not (sequence 0), the cumulative counters tell, as they only grow and
/// `finished` comes last.
fn is_newer(snap: &Snapshot, kept: &Snapshot) -> bool {
    if snap.sequence > 0 && kept.sequence > 0 {
        return snap.sequence > kept.sequence;
    }
    progress(snap) >= progress(kept)
}

/// How far a runner session has got by its counters.
fn progress(s: &Snapshot) -> (u64, bool) {
    let steps: u64 = s
        .steps
        .iter()
        .map(|st| st.outcomes.values().sum::<u64>() + st.checks_passed + st.checks_failed)
        .sum();
    let connect_errors: u64 = s.connect_errors.values().sum();
    (
        s.iterations + s.dropped + s.connects + connect_errors + steps,
        s.finished,
    )
}

pub type SessionStream =
    Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send + 'static>>;

/// Reads a session's first message, which must be Register.
pub async fn read_register(
    inbound: &mut Streaming<RunnerMessage>,
) -> Result<proto::Register, Status> {
    match inbound.message().await? {
        Some(RunnerMessage {
            msg: Some(runner_message::Msg::Register(reg)),
        }) => Ok(reg),
        _ => Err(Status::invalid_argument(
            "the first message must be Register",
        )),
    }
}

impl Coordinator {
    /// Takes a registered runner's session: checks it, then feeds its snapshots in until the
    /// stream ends.
    pub fn attach(
        &self,
        reg: proto::Register,
        mut inbound: Streaming<RunnerMessage>,
    ) -> Result<SessionStream, Status> {
        let (index, session) = (reg.index, reg.session.clone());
        let (stream, rx) = self.register(reg)?;
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(runner_message::Msg::Snapshot(s)) = m.msg {
                    me.on_snapshot(index, &session, s);
                }
            }
            me.on_gone(index, &session, stream);
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl CoordinatorApi for Coordinator {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<RunnerMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let mut inbound = req.into_inner();
        let reg = read_register(&mut inbound).await?;
        self.attach(reg, inbound).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coordinator for a test starting at `start` that waits for `runners` runners.
    fn coordinator_for(start: SystemTime, runners: usize) -> Coordinator {
        let spec = TestSpec {
            name: "t".into(),
            run_id: "20261208-000000-abcdef".into(),
            yaml: String::new(),
            budget: Assignment {
                connections: 1,
                rate: None,
                stages: Vec::new(),
                duration: 1.0,
                lanes: Default::default(),
                whole: None,
            },
            max_connections: None,
        };
        Coordinator::new(spec, "token".into(), Start::At(start), runners)
    }

    fn coordinator() -> Coordinator {
        coordinator_for(SystemTime::now(), 1)
    }

    /// Runner `index`'s registration under `session`, with the right token.
    fn register(index: u32, session: &str) -> proto::Register {
        proto::Register {
            loadtest: "t".into(),
            index,
            token: "token".into(),
            session: session.into(),
        }
    }

    fn snap(iterations: u64, finished: bool) -> Snapshot {
        Snapshot {
            iterations,
            finished,
            ..Snapshot::default()
        }
    }

    fn kept(c: &Coordinator) -> (u64, bool) {
        let r = c.results();
        assert_eq!(r.len(), 1);
        (r[0].1.iterations, r[0].1.finished)
    }

    #[test]
    fn a_runner_for_another_test_is_told_so_before_its_token_is_looked_at() {
        let c = coordinator();
        let other = proto::Register {
            loadtest: "checkout".into(),
            token: "not-the-token".into(),
            ..register(0, "s")
        };
        let e = c.register(other).map(|_| ()).unwrap_err();
        assert_eq!(
            e.message(),
            "--loadtest \"checkout\": this coordinator runs LoadTest \"t\""
        );
        let bad_token = proto::Register {
            token: "not-the-token".into(),
            ..register(0, "s")
        };
        let e = c.register(bad_token).map(|_| ()).unwrap_err();
        assert_eq!(
            e.message(),
            "wrong token for LoadTest \"t\" (STAMPEDE_TOKEN)"
        );
        assert!(c.register(register(0, "s")).is_ok());
    }

    #[test]
    fn a_numbered_snapshot_that_arrives_late_cannot_roll_gauges_back() {
        let c = coordinator();
        let numbered = |sequence, active| Snapshot {
            iterations: 5,
            active_connections: active,
            sequence,
            ..Snapshot::default()
        };
        c.on_snapshot(0, "s", numbered(2, 0));
        c.on_snapshot(0, "s", numbered(1, 7));
        assert_eq!(c.results()[0].1.active_connections, 0);
    }

    #[test]
    fn two_runners_that_drew_the_same_session_id_are_kept_apart() {
        let c = coordinator();
        c.on_snapshot(0, "same", snap(10, false));
        c.on_snapshot(1, "same", snap(30, false));
        let total: u64 = c.results().iter().map(|(_, s)| s.iterations).sum();
        assert_eq!(total, 40);
    }

    #[test]
    fn a_repeated_or_out_of_order_snapshot_changes_nothing() {
        let c = coordinator();
        c.on_snapshot(0, "s", snap(10, false));
        c.on_snapshot(0, "s", snap(20, false));
        // Late arrival of an older snapshot, then a repeat of the newest.
        c.on_snapshot(0, "s", snap(10, false));
        assert_eq!(kept(&c), (20, false));
        c.on_snapshot(0, "s", snap(20, false));
        assert_eq!(kept(&c), (20, false));
        // The final one wins, and a stale copy of the same counters cannot undo `finished`.
        c.on_snapshot(0, "s", snap(25, true));
        c.on_snapshot(0, "s", snap(25, false));
        c.on_snapshot(0, "s", snap(20, false));
        assert_eq!(kept(&c), (25, true));
    }

    #[test]
    fn a_runner_between_two_streams_is_waited_for_before_the_test_counts_as_finished() {
        let c = coordinator_for(SystemTime::now(), 2);
        let reg = |index: u32| register(index, &format!("session-{index}"));
        let _a = c.register(reg(0)).unwrap();
        let (b_stream, _b) = c.register(reg(1)).unwrap();
        c.on_snapshot(0, "session-0", snap(10, true));
        c.on_snapshot(1, "session-1", snap(8, false));
        assert!(!c.all_finished());
        // Runner 1's stream breaks before its final snapshot: runner 0 alone is not the test.
        c.on_gone(1, "session-1", b_stream);
        assert_eq!(c.live(), vec![0]);
        assert!(
            !c.all_finished(),
            "a runner that may reconnect is waited for"
        );
        // It reconnects under its session and delivers the end of its plan.
        let _b2 = c.register(reg(1)).unwrap();
        c.on_snapshot(1, "session-1", snap(10, true));
        assert!(c.all_finished());
        // One that never comes back is waited for only as long as a reconnect takes.
        let c = coordinator_for(SystemTime::now(), 2);
        let _a = c.register(reg(0)).unwrap();
        let (b_stream, _b) = c.register(reg(1)).unwrap();
        c.on_snapshot(0, "session-0", snap(10, true));
        c.on_gone(1, "session-1", b_stream);
        assert!(!c.all_finished());
        for (_, at) in c.lock().gone.values_mut() {
            *at -= RECONNECT_GRACE;
        }
        assert!(c.all_finished());
    }

    fn assignment(
        rx: &mut mpsc::Receiver<Result<CoordinatorMessage, Status>>,
    ) -> proto::Assignment {
        let mut last = None;
        while let Ok(Ok(m)) = rx.try_recv() {
            if let Some(coordinator_message::Msg::Assignment(a)) = m.msg {
                last = Some(a);
            }
        }
        last.expect("an assignment was pushed")
    }

    #[test]
    fn only_a_runner_that_joins_a_running_test_is_told_to_skip_the_past() {
        let c = coordinator_for(SystemTime::now() - Duration::from_secs(5), 2);
        let (_, mut a) = c.register(register(0, "a")).unwrap();
        let (b_stream, mut b) = c.register(register(1, "b")).unwrap();
        // Both were in the first split, late as its start is: theirs is the whole plan.
        assert_eq!(assignment(&mut a).run_from_unix_ms, 0);
        assert_eq!(assignment(&mut b).run_from_unix_ms, 0);
        // Runner 1 is replaced mid-test; runner 0 carried its share in between.
        c.on_gone(1, "b", b_stream);
        let before = SystemTime::now();
        let (_, mut b2) = c.register(register(1, "b2")).unwrap();
        let from = assignment(&mut b2).run_from_unix_ms;
        assert!(
            from >= unix_ms(before) && from <= unix_ms(SystemTime::now()),
            "{from}"
        );
        assert_eq!(assignment(&mut a).run_from_unix_ms, 0);
    }

    #[test]
    fn a_gone_runner_keeps_its_counts_but_not_its_connections() {
        let c = coordinator();
        let (stream, _rx) = c.register(register(0, "s")).unwrap();
        let holding = Snapshot {
            iterations: 40,
            active_connections: 7,
            sequence: 3,
            ..Snapshot::default()
        };
        c.on_snapshot(0, "s", holding.clone());
        assert_eq!(c.overall().active_connections, 7);
        c.on_gone(0, "s", stream);
        assert_eq!(c.overall().active_connections, 0);
        assert_eq!(c.overall().iterations, 40);
        // The same session back on a new stream reports its users again.
        let (stream2, _rx2) = c.register(register(0, "s")).unwrap();
        c.on_snapshot(
            0,
            "s",
            Snapshot {
                sequence: 4,
                ..holding
            },
        );
        assert_eq!(c.overall().active_connections, 7);
        // The old stream ending late does not touch the live session.
        c.on_gone(0, "s", stream);
        assert_eq!(c.overall().active_connections, 7);
        let _ = stream2;
    }
}
