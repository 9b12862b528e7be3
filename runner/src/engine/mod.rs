//! The engine: worker threads that run one assignment, take new ones live, and stream
//! per-second reports. `stampede run` drives it in-process (`run`); the agent drives it for
//! a coordinator. Its parts: `worker` (pacing, the users of one thread), `user` (one virtual
//! user's loop over the scenario's connection kind), the compiled `scenario`, and the precise
//! `timer`.

pub mod run;
pub mod scenario;
pub mod timer;
pub mod user;
pub mod worker;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assignment::Assignment;
use crate::engine::user::Shared;
use worker::{Report, StartGate, WorkerInit};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Worker threads; each owns a share of the users.
    pub threads: usize,
    /// Wall-clock instant of the first iteration (users connect before it).
    pub start_at: Option<SystemTime>,
    /// A runner joining a running test: no iteration scheduled before this instant is run
    /// or counted as dropped, as other runners carried that part of the plan.
    pub run_from: Option<SystemTime>,
    /// `{{ vu.id }}` is `stride × n + offset` for this runner's n-th user: a coordinated runner
    /// takes its index as offset and the most runners a test may have as stride, so ids are
    /// unique across every runner of a test. One process alone: 1 and 0.
    pub vu_id_stride: u64,
    pub vu_id_offset: u64,
    /// Seeds every user's random stream (with its `{{ vu.id }}`): the same seed draws the
    /// same `random`, `randomString`, `zipf`, `gaussian` and `uuid` values for the same user.
    pub seed: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            start_at: None,
            run_from: None,
            vu_id_stride: 1,
            vu_id_offset: 0,
            seed: None,
        }
    }
}

/// Why an assignment was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("a running test cannot switch between the open model (rate) and the closed model")]
    ModelChange,
}

/// Ends a running test: `stop` lets in-flight work finish (bounded, see the worker's drain),
/// `abort` cuts the drain short; in-flight requests are then counted as `interrupted`.
/// Clone freely (a Ctrl-C handler holds one).
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    stop: CancellationToken,
    abort: CancellationToken,
    /// When `stop` was first called: the load window ends there, not after the drain.
    at: Arc<std::sync::OnceLock<Instant>>,
}

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.at.set(Instant::now());
        self.stop.cancel();
    }

    /// Stops without waiting for in-flight work (a second Ctrl-C).
    pub fn abort(&self) {
        self.stop();
        self.abort.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// When the test was stopped early, if it was.
    pub fn stopped_at(&self) -> Option<Instant> {
        self.at.get().copied()
    }
}

pub struct Engine {
    assignment: watch::Sender<Arc<Assignment>>,
    stop: StopHandle,
    reports: mpsc::Receiver<Report>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub workers: usize,
    /// When the engine started (reports count seconds from here).
    pub started: Instant,
    pub started_wall: SystemTime,
    /// The instant the plan starts: `startAt`, or once the initial users are ready.
    t0: watch::Receiver<Option<Instant>>,
}

impl Engine {
    pub fn start(
        shared: Arc<Shared>,
        first: Assignment,
        opts: EngineOptions,
    ) -> std::io::Result<Engine> {
        // A thread with no users would be handed rate it can only drop.
        let workers = opts
            .threads
            .clamp(1, first.peak_connections().max(1) as usize);
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let at_instant = |at: SystemTime| match at.duration_since(started_wall) {
            Ok(ahead) => started + ahead,
            Err(behind) => started.checked_sub(behind.duration()).unwrap_or(started),
        };
        let start_at = opts.start_at.map(at_instant);
        let run_from = opts.run_from.map(at_instant);
        let gate = Arc::new(StartGate::new(workers, start_at));
        let (tx, rx) = watch::channel(Arc::new(first));
        // A few seconds of reports per worker; a full channel makes workers hold and merge.
        let (rep_tx, rep_rx) = mpsc::channel(workers * 4);
        let stop = StopHandle::default();
        let mut threads = Vec::with_capacity(workers);
        // Without a seed, every run draws new values.
        let seed = opts.seed.unwrap_or_else(|| fastrand::u64(..));
        for index in 0..workers {
            threads.push(worker::spawn(WorkerInit {
                index,
                count: workers,
                shared: shared.clone(),
                engine_start: started,
                gate: gate.clone(),
                assignment: rx.clone(),
                reports: rep_tx.clone(),
                stop: stop.stop.clone(),
                abort: stop.abort.clone(),
                vu_ids: (opts.vu_id_stride.max(1), opts.vu_id_offset),
                seed,
                run_from,
            })?);
        }
        Ok(Engine {
            assignment: tx,
            stop,
            reports: rep_rx,
            threads,
            workers,
            started,
            started_wall,
            t0: gate.subscribe(),
        })
    }

    /// Applies a new assignment: rate changes take effect at the next scheduled instant,
    /// connection changes add or retire users gracefully. The model (open or closed) is
    /// fixed for the life of the engine.
    pub fn update(&self, a: Assignment) -> Result<(), UpdateError> {
        if a.rate.is_some() != self.assignment.borrow().rate.is_some() {
            return Err(UpdateError::ModelChange);
        }
        self.assignment.send_replace(Arc::new(a));
        Ok(())
    }

    pub fn assignment(&self) -> Arc<Assignment> {
        self.assignment.borrow().clone()
    }

    /// Ends the test now; in-flight requests finish and are measured.
    pub fn stop(&self) {
        self.stop.stop();
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The next report, or `None` once every worker has finished.
    pub async fn next_report(&mut self) -> Option<Report> {
        self.reports.recv().await
    }

    /// The instant the plan started, once known.
    pub fn t0(&self) -> Option<Instant> {
        *self.t0.borrow()
    }

    /// Waits for the worker threads to exit (after `next_report` returned `None`).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
