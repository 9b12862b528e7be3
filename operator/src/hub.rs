//! One gRPC endpoint for every LoadTest the operator coordinates: a runner's Register names
//! its test (`namespace/name`) and the session is handed to that test's coordinator. Only the
//! leader answers; a standby replica tells runners to retry, so they end up at the leader.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stampede_api::proto::RunnerMessage;
use stampede_api::proto::coordinator_server::Coordinator as CoordinatorApi;
use tonic::{Request, Response, Status, Streaming};

use crate::coordinator::{Coordinator, SessionStream, read_register};

#[derive(Default)]
struct Tests {
    running: HashMap<String, Coordinator>,
    /// Tests that have ended: a runner that missed its Stop is told to exit, not to retry.
    ended: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct Hub {
    tests: Arc<Mutex<Tests>>,
    leading: Arc<AtomicBool>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tests> {
        self.tests.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, key: String, coordinator: Coordinator) {
        let mut t = self.lock();
        t.ended.remove(&key);
        t.running.insert(key, coordinator);
    }

    /// The test stops being coordinated; `ended`: it is over and its runners should exit.
    pub fn remove(&self, key: &str, ended: bool) -> Option<Coordinator> {
        let mut t = self.lock();
        if ended {
            t.ended.insert(key.to_string());
        } else {
            t.ended.remove(key);
        }
        t.running.remove(key)
    }

    /// Whether this replica holds the lease and may coordinate.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl CoordinatorApi for Hub {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<RunnerMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        if !self.leading.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "this operator replica is on standby; retry",
            ));
        }
        let mut inbound = req.into_inner();
        let reg = read_register(&mut inbound).await?;
        // Unknown for now is not final: after an operator restart the test is known again as
        // soon as the controller has seen it.
        let coordinator = {
            let t = self.lock();
            if t.ended.contains(&reg.loadtest) {
                return Err(Status::permission_denied(format!(
                    "LoadTest {:?} has ended",
                    reg.loadtest
                )));
            }
            t.running.get(&reg.loadtest).cloned()
        };
        let coordinator = coordinator.ok_or_else(|| {
            Status::unavailable(format!(
                "LoadTest {:?} is not coordinated here yet",
                reg.loadtest
            ))
        })?;
        coordinator.attach(reg, inbound).map(Response::new)
    }
}
