//! The coordinator: runners register over gRPC with the test's token, the budget is split
//! across the live runners (exactly, with the api's split), every change (a runner joining or
//! leaving, a new spec) is pushed as a new assignment revision, and cumulative snapshots are
//! kept per runner session so a runner that restarts or reconnects is neither lost nor
//! double counted. Backend-agnostic: where runners live is the backend's business.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use stampede_api::proto::coordinator_server::Coordinator as CoordinatorApi;
use stampede_api::proto::{
    self, CoordinatorMessage, RunnerMessage, Snapshot, coordinator_message, runner_message,
};
use stampede_api::split::split_budget;
use stampede_runner::Assignment;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// What the whole test asks for.
#[derive(Clone, Debug)]
pub struct TestSpec {
    pub name: String,
    pub yaml: String,
    pub budget: Assignment,
}

struct Live {
    session: String,
    tx: mpsc::Sender<Result<CoordinatorMessage, Status>>,
    acked: u64,
}

/// When a revision was issued and when the last live runner acknowledged it.
#[derive(Clone, Debug)]
pub struct Propagation {
    pub revision: u64,
    pub issued: Instant,
    pub reached_all: Option<Instant>,
    pub runners: usize,
}

struct State {
    spec: TestSpec,
    token: String,
    start_at_unix_ms: i64,
    revision: u64,
    live: BTreeMap<u32, Live>,
    /// Latest cumulative snapshot of every session ever seen, by session id.
    results: BTreeMap<String, (u32, Snapshot)>,
    propagation: Vec<Propagation>,
    /// Assignments wait until this many runners are in (or `release` is called), so the first
    /// split is the final one and no user is started only to be retired.
    expected: usize,
    released: bool,
}

/// The shared coordinator; clone freely.
#[derive(Clone)]
pub struct Coordinator {
    state: Arc<Mutex<State>>,
    pub changed: Arc<Notify>,
}

impl Coordinator {
    pub fn new(
        spec: TestSpec,
        token: String,
        start_at: SystemTime,
        expected: usize,
    ) -> Coordinator {
        let start_at_unix_ms = start_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Coordinator {
            state: Arc::new(Mutex::new(State {
                spec,
                token,
                start_at_unix_ms,
                revision: 0,
                live: BTreeMap::new(),
                results: BTreeMap::new(),
                propagation: Vec::new(),
                expected,
                released: false,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new spec (a saved file, a patched LoadTest): every live runner gets a new revision.
    pub fn update_spec(&self, spec: TestSpec) -> u64 {
        let mut st = self.lock();
        st.spec = spec;
        Self::push(&mut st)
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
        st.revision += 1;
        let n = st.live.len();
        let now = Instant::now();
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
        let shares = split_budget(b.connections, b.rate, &stages, n);
        for (share, live) in shares.into_iter().zip(st.live.values()) {
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

    /// Revisions and how fast they reached every live runner.
    pub fn propagation(&self) -> Vec<Propagation> {
        self.lock().propagation.clone()
    }

    /// Live runner indices.
    pub fn live(&self) -> Vec<u32> {
        self.lock().live.keys().copied().collect()
    }

    /// The latest cumulative snapshot of every session.
    pub fn results(&self) -> Vec<(u32, Snapshot)> {
        self.lock().results.values().cloned().collect()
    }

    /// Whether every live runner has reported the end of its plan.
    pub fn all_finished(&self) -> bool {
        let st = self.lock();
        !st.live.is_empty()
            && st
                .live
                .values()
                .all(|l| st.results.get(&l.session).is_some_and(|(_, s)| s.finished))
    }

    /// Sends Stop to every live runner.
    pub fn stop_all(&self) {
        let st = self.lock();
        for live in st.live.values() {
            let _ = live.tx.try_send(Ok(CoordinatorMessage {
                msg: Some(coordinator_message::Msg::Stop(proto::Stop {})),
            }));
        }
    }

    fn register(
        &self,
        reg: proto::Register,
    ) -> Result<mpsc::Receiver<Result<CoordinatorMessage, Status>>, Status> {
        let mut st = self.lock();
        if reg.token != st.token {
            return Err(Status::unauthenticated("wrong token for this LoadTest"));
        }
        if reg.loadtest != st.spec.name {
            return Err(Status::permission_denied(format!(
                "this coordinator runs LoadTest {:?}",
                st.spec.name
            )));
        }
        let (tx, rx) = mpsc::channel(16);
        st.live.insert(
            reg.index,
            Live {
                session: reg.session,
                tx,
                acked: 0,
            },
        );
        Self::push(&mut st);
        Ok(rx)
    }

    fn on_snapshot(&self, index: u32, session: &str, snap: Snapshot) {
        let mut st = self.lock();
        if let Some(l) = st.live.get_mut(&index)
            && l.session == session
        {
            l.acked = l.acked.max(snap.revision);
        }
        st.results.insert(session.to_string(), (index, snap));
        Self::record_ack(&mut st);
        drop(st);
        self.changed.notify_waiters();
    }

    fn on_gone(&self, index: u32, session: &str) {
        let mut st = self.lock();
        if st.live.get(&index).is_some_and(|l| l.session == session) {
            st.live.remove(&index);
            // The survivors take over the whole budget at once.
            Self::push(&mut st);
        }
        drop(st);
        self.changed.notify_waiters();
    }
}

type SessionStream =
    Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl CoordinatorApi for Coordinator {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<RunnerMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound.message().await?;
        let Some(RunnerMessage {
            msg: Some(runner_message::Msg::Register(reg)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message must be Register",
            ));
        };
        let (index, session) = (reg.index, reg.session.clone());
        let rx = self.register(reg)?;
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(runner_message::Msg::Snapshot(s)) = m.msg {
                    me.on_snapshot(index, &session, s);
                }
            }
            me.on_gone(index, &session);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
