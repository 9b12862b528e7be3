//! `stampede agent`: a runner driven by a coordinator over gRPC. It registers with its index
//! and the test's token, runs whatever assignment it is given (new revisions applied live),
//! streams cumulative snapshots every second (and at once after each new revision, as an
//! acknowledgement), keeps running its last assignment while the coordinator is away and
//! reconnects with backoff, and exits after its plan ends or on Stop.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use stampede_api::instant::from_unix_ms;
use stampede_api::proto::coordinator_client::CoordinatorClient;
use stampede_api::proto::{
    self, CoordinatorMessage, Register, RunnerMessage, Snapshot, StepSnapshot, coordinator_message,
    runner_message,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::assignment::Assignment;
use crate::engine::EngineOptions;
use crate::load::{LoadFailure, load_str, prepare};
use crate::results::histogram_wire_bytes;
use crate::run::Run;
use crate::stats::{Delta, Outcome};

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("the coordinator refused this runner: {0}")]
    Refused(String),
    #[error("the assignment's LoadTest does not load: {0}")]
    BadAssignment(#[from] LoadFailure),
    #[error("cannot start worker threads: {0}")]
    Start(#[source] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub coordinator: String,
    pub token: String,
    pub loadtest: String,
    pub index: u32,
    pub threads: Option<usize>,
}

/// How long to wait for a Stop after the plan has ended before exiting on our own.
const LINGER: Duration = Duration::from_secs(10);

fn to_assignment(a: &proto::Assignment) -> Assignment {
    Assignment {
        connections: a.connections,
        rate: a.rate,
        stages: a
            .stages
            .iter()
            .map(|s| (s.duration_seconds, s.rate, s.connections))
            .collect(),
        duration: a.duration_seconds,
    }
}

/// The cumulative snapshot of everything measured so far.
pub fn snapshot(names: &[String], totals: &Delta, revision: u64, finished: bool) -> Snapshot {
    let outcome_map = |counts: &[u64; Outcome::COUNT]| -> HashMap<String, u64> {
        Outcome::ALL
            .into_iter()
            .filter(|o| counts[*o as usize] > 0)
            .map(|o| (o.as_str().to_string(), counts[o as usize]))
            .collect()
    };
    let mut all = crate::stats::new_histogram();
    for s in &totals.steps {
        // Same bounds everywhere, so adding cannot fail.
        let _ = all.add(&s.latency);
    }
    Snapshot {
        revision,
        iterations: totals.iterations,
        dropped: totals.dropped,
        connects: totals.connects,
        active_connections: totals.active_connections,
        connect_errors: outcome_map(&totals.connect_errors),
        steps: names
            .iter()
            .zip(&totals.steps)
            .map(|(name, s)| StepSnapshot {
                name: name.clone(),
                outcomes: outcome_map(&s.outcomes),
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                latency: histogram_wire_bytes(&s.latency).into(),
                service: histogram_wire_bytes(&s.service).into(),
            })
            .collect(),
        finished,
        latency_all: histogram_wire_bytes(&all).into(),
        sequence: 0,
    }
}

struct Current {
    run: Run,
    revision: u64,
    /// Gauges from the latest second (the totals only sum counters).
    active: u64,
    /// Snapshots sent so far; the next one carries this plus one.
    sent: std::cell::Cell<u64>,
}

impl Current {
    /// Takes what `Run::step` returned; true once the run has ended (nothing is active then).
    fn absorb(&mut self, points: Option<Vec<crate::results::Point>>) -> bool {
        match points {
            Some(p) => {
                if let Some(last) = p.last() {
                    self.active = last.active_connections;
                }
                false
            }
            None => {
                self.active = 0;
                true
            }
        }
    }

    fn snapshot(&self, finished: bool) -> Snapshot {
        let mut s = snapshot(
            self.run.step_names(),
            self.run.totals(),
            self.revision,
            finished,
        );
        s.active_connections = self.active;
        self.sent.set(self.sent.get() + 1);
        s.sequence = self.sent.get();
        s
    }
}

/// Runs the agent until its plan has ended and been reported, or a Stop arrives.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let session = stampede_api::id::random_hex(16);
    // SIGTERM (a deleted pod) ends the run like Stop does, final snapshot included, so the
    // last second measured is not lost with the process.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::Start)?;
    let mut current: Option<Current> = None;
    let mut finished = false;
    // Once the plan has ended: when to stop waiting for a Stop (and, if the stream broke
    // meanwhile, stop reconnecting to deliver the final snapshot).
    let mut linger_until: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let (tx, rx) = mpsc::channel::<RunnerMessage>(16);
        let register = RunnerMessage {
            msg: Some(runner_message::Msg::Register(Register {
                loadtest: cfg.loadtest.clone(),
                index: cfg.index,
                token: cfg.token.clone(),
                session: session.clone(),
            })),
        };
        let _ = tx.send(register).await;
        let connected = async {
            let mut client = CoordinatorClient::connect(cfg.coordinator.clone())
                .await
                .ok()?;
            Some(
                client
                    .session(ReceiverStream::new(rx))
                    .await
                    .map(|r| r.into_inner()),
            )
        };
        let mut inbound = match connected.await {
            Some(Ok(s)) => s,
            Some(Err(status)) if refused(&status) => {
                return Err(AgentError::Refused(status.message().to_string()));
            }
            _ => {
                if linger_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
                    return Ok(());
                }
                // Keep running (and measuring) while the coordinator is away.
                if let Some(c) = current.as_mut() {
                    let wait = tokio::time::sleep(backoff);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            points = c.run.step(), if !finished => {
                                finished = c.absorb(points);
                                if finished {
                                    linger_until = Some(tokio::time::Instant::now() + LINGER);
                                }
                            }
                            // Nobody to report to: stop measuring and go.
                            _ = term.recv() => return Ok(()),
                        }
                    }
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = term.recv() => return Ok(()),
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if let Some(c) = current.as_mut() {
            // A coordinator that restarted counts revisions from 1 again: its first assignment
            // must apply even though its number is lower than the last one seen.
            c.revision = 0;
            let _ = tx.send(wrap(c.snapshot(finished))).await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let step = async {
                match current.as_mut() {
                    Some(c) if !finished => c.run.step().await,
                    _ => std::future::pending().await,
                }
            };
            let linger = async {
                match linger_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(CoordinatorMessage { msg: Some(coordinator_message::Msg::Assignment(a)) })) => {
                        apply(&cfg, &mut current, &a)?;
                        if let Some(c) = &current {
                            let _ = tx.send(wrap(c.snapshot(finished))).await;
                        }
                    }
                    Ok(Some(CoordinatorMessage { msg: Some(coordinator_message::Msg::Stop(_)) })) => {
                        return stop_and_flush(current.take(), tx).await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(status) if refused(&status) => {
                        return Err(AgentError::Refused(status.message().to_string()));
                    }
                    Err(_) => break,
                },
                points = step => {
                    let c = current.as_mut().expect("step only runs with a current run");
                    if c.absorb(points) {
                        finished = true;
                        let _ = tx.send(wrap(c.snapshot(true))).await;
                        linger_until = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
                _ = tick.tick() => {
                    if let Some(c) = &current {
                        let _ = tx.send(wrap(c.snapshot(finished))).await;
                    }
                }
                _ = linger => return Ok(()),
                _ = term.recv() => return stop_and_flush(current.take(), tx).await,
            }
        }
        // A stream that broke after the plan ended may have lost the final snapshot: the
        // reconnect re-sends it (same session, so it is not counted twice) until the linger
        // ends, or the coordinator would finish the test without this runner's last second.
        if linger_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
            return Ok(());
        }
    }
}

/// Ends the run, sends its final cumulative snapshot and closes the session.
async fn stop_and_flush(
    current: Option<Current>,
    tx: mpsc::Sender<RunnerMessage>,
) -> Result<(), AgentError> {
    if let Some(mut c) = current {
        c.run.stop();
        while c.run.step().await.is_some() {}
        let _ = tx.send(wrap(c.snapshot(true))).await;
        let _ = c.run.summarize();
    }
    // Give the final snapshot a moment to leave before the stream closes.
    drop(tx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// A refusal is final: retrying with the same token or test cannot succeed.
fn refused(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

fn wrap(s: Snapshot) -> RunnerMessage {
    RunnerMessage {
        msg: Some(runner_message::Msg::Snapshot(s)),
    }
}

fn apply(
    cfg: &AgentConfig,
    current: &mut Option<Current>,
    a: &proto::Assignment,
) -> Result<(), AgentError> {
    let assignment = to_assignment(a);
    match current {
        Some(c) => {
            if a.revision > c.revision {
                // A model switch cannot happen: the coordinator never changes it mid-test.
                if let Ok(Some(w)) = c.run.update(assignment) {
                    eprintln!("stampede agent: warning: {w}");
                }
                c.revision = a.revision;
            }
        }
        None => {
            let loaded = load_str(&a.loadtest_yaml, Path::new("."))?;
            let mut prepared = prepare(&loaded)?;
            prepared.assignment = assignment;
            let mut opts = EngineOptions {
                start_at: from_unix_ms(a.start_at_unix_ms).or(Some(SystemTime::now())),
                run_from: from_unix_ms(a.run_from_unix_ms),
                vu_id_stride: u64::from(stampede_api::validate::MAX_RUNNERS),
                vu_id_offset: u64::from(cfg.index),
                ..EngineOptions::default()
            };
            if let Some(t) = cfg.threads {
                opts.threads = t.max(1);
            }
            let run = Run::start(prepared, opts).map_err(AgentError::Start)?;
            if let Some(w) = &run.fd_warning {
                eprintln!("stampede agent: warning: {w}");
            }
            *current = Some(Current {
                run,
                revision: a.revision,
                active: 0,
                sent: std::cell::Cell::new(0),
            });
        }
    }
    Ok(())
}
