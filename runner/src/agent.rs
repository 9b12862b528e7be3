//! `stampede agent`: a runner driven by a coordinator over gRPC. It registers with its index
//! and the test's token, runs whatever assignment it is given (new revisions applied live),
//! streams cumulative snapshots every second (and at once after each new revision, as an
//! acknowledgement), keeps running its last assignment while the coordinator is away and
//! reconnects with backoff (stopping once it has been away for `orphan_after`, or at once
//! when the process that started it is gone), and exits after its plan ends or on Stop,
//! SIGTERM or SIGINT (a second one, or `Stop { now }`, cuts the drain short).

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
use crate::engine::run::Run;
use crate::load::{LoadFailure, load_str, prepare, prepare_run};
use crate::results::histogram_wire_bytes;
use crate::stats::{Delta, Outcome};

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("the coordinator refused this runner: {0}")]
    Refused(String),
    #[error("the assignment's LoadTest does not load: {0}")]
    BadAssignment(#[from] LoadFailure),
    #[error("cannot start worker threads: {0}")]
    Start(#[source] std::io::Error),
    #[error("the coordinator at {url} has been unreachable for {secs} s: stopped the load")]
    Orphaned { url: String, secs: u64 },
    #[error("the process that started this runner (pid {0}) is gone: stopped the load")]
    ParentGone(u32),
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub coordinator: String,
    pub token: String,
    pub loadtest: String,
    pub index: u32,
    pub threads: Option<usize>,
    /// Stop the load once the coordinator has been unreachable this long: no runner keeps
    /// loading a target nobody watches. Longer than a leader takeover (the lease, 15 s).
    pub orphan_after: Duration,
    /// Stop at once when the process that started this one exits (`stampede-operator local`
    /// passes it: its runners must not outlive it).
    pub exit_with_parent: bool,
    /// Seeds users' random streams (`EngineOptions::seed`).
    pub seed: Option<u64>,
}

/// How long to wait for a Stop after the plan has ended before exiting on our own.
const LINGER: Duration = Duration::from_secs(10);
/// While the coordinator is unreachable, say so this often.
const UNREACHABLE_NOTICE: Duration = Duration::from_secs(5);
/// How often the parent process is checked (`exit_with_parent`).
const PARENT_POLL: Duration = Duration::from_millis(250);

/// SIGTERM (a deleted pod) and SIGINT (Ctrl-C, or `kill -INT`) end the run like Stop does.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    /// The parent process to outlive no longer than `PARENT_POLL`, if asked.
    parent: Option<u32>,
}

/// Why the agent was told to end.
enum Ending {
    /// A signal: stop, flush and go.
    Signal,
    ParentGone(u32),
}

impl Signals {
    fn new(exit_with_parent: bool) -> Result<Signals, AgentError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(AgentError::Start)?,
            int: signal(SignalKind::interrupt()).map_err(AgentError::Start)?,
            parent: exit_with_parent.then(std::os::unix::process::parent_id),
        })
    }

    async fn next(&mut self) -> Ending {
        let parent = self.parent;
        let orphaned = async move {
            match parent {
                // Re-parenting (to init or a subreaper) is how a child sees its parent die.
                Some(p) => loop {
                    tokio::time::sleep(PARENT_POLL).await;
                    if std::os::unix::process::parent_id() != p {
                        return p;
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.term.recv() => Ending::Signal,
            _ = self.int.recv() => Ending::Signal,
            p = orphaned => Ending::ParentGone(p),
        }
    }
}

fn to_assignment(a: &proto::Assignment) -> Assignment {
    let stages = |st: &[proto::Stage]| {
        st.iter()
            .map(|s| (s.duration_seconds, s.rate, s.connections))
            .collect()
    };
    let whole = Assignment {
        connections: 0,
        rate: a.whole_rate,
        stages: stages(&a.whole_stages),
        duration: a.duration_seconds,
        lanes: Default::default(),
        whole: None,
    };
    Assignment {
        lanes: stampede_api::assignment::Lanes {
            index: u64::from(a.lane),
            count: u64::from(a.lanes.max(1)),
        },
        // A coordinator without lanes sends no whole schedule: the share is all there is.
        whole: (a.lanes > 0).then(|| std::sync::Arc::new(whole)),
        connections: a.connections,
        rate: a.rate,
        stages: stages(&a.stages),
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
        connects_used: totals.connects_used,
        active_connections: totals.active_connections,
        connect_errors: outcome_map(&totals.connect_errors),
        steps: names
            .iter()
            .zip(&totals.steps)
            .map(|(name, s)| StepSnapshot {
                name: name.clone(),
                outcomes: outcome_map(&s.outcomes),
                codes: s.codes.iter().map(|(c, n)| (c.to_string(), n)).collect(),
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
        reasons: totals
            .reasons
            .sorted()
            .into_iter()
            .map(|r| stampede_api::proto::ErrorReason {
                kind: r.outcome.as_str().to_string(),
                text: r.text.clone(),
                count: r.count,
            })
            .collect(),
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
    // A signal ends the run like Stop does, final snapshot included, so the last second
    // measured is not lost with the process.
    let mut signals = Signals::new(cfg.exit_with_parent)?;
    let mut current: Option<Current> = None;
    let mut finished = false;
    // Once the plan has ended: when to stop waiting for a Stop (and, if the stream broke
    // meanwhile, stop reconnecting to deliver the final snapshot).
    let mut linger_until: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(100);
    // Since when the coordinator has been out of reach, and when that was last said.
    let mut unreachable_since: Option<tokio::time::Instant> = None;
    let mut noticed = tokio::time::Instant::now();
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
            let mut client = match CoordinatorClient::connect(cfg.coordinator.clone()).await {
                Ok(c) => c,
                Err(e) => return Err(e.to_string()),
            };
            Ok(client
                .session(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner()))
        };
        let mut inbound = match connected.await {
            Ok(Ok(s)) => s,
            Ok(Err(status)) if refused(&status) => {
                return Err(AgentError::Refused(status.message().to_string()));
            }
            failure => {
                if linger_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
                    return Ok(());
                }
                let now = tokio::time::Instant::now();
                let since = *unreachable_since.get_or_insert(now);
                let away = now.duration_since(since);
                if away >= cfg.orphan_after {
                    if let Some(c) = current.take() {
                        abort_run(c).await;
                    }
                    return Err(AgentError::Orphaned {
                        url: cfg.coordinator.clone(),
                        secs: away.as_secs(),
                    });
                }
                if now >= noticed + UNREACHABLE_NOTICE {
                    noticed = now;
                    let why = match failure {
                        Err(e) => e,
                        Ok(Err(status)) => status.message().to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    eprintln!(
                        "stampede agent: cannot reach the coordinator at {} for {} s ({why}); retrying{}, stopping after {} s",
                        cfg.coordinator,
                        away.as_secs(),
                        if current.is_some() {
                            " while running the last assignment"
                        } else {
                            ""
                        },
                        cfg.orphan_after.as_secs()
                    );
                }
                // Keep running (and measuring) while the coordinator is away.
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                loop {
                    let step = async {
                        match current.as_mut() {
                            Some(c) if !finished => c.run.step().await,
                            _ => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = &mut wait => break,
                        points = step => {
                            let c = current.as_mut().expect("step only runs with a current run");
                            finished = c.absorb(points);
                            if finished {
                                linger_until = Some(tokio::time::Instant::now() + LINGER);
                            }
                        }
                        ending = signals.next() => {
                            // Nobody to report to: stop measuring and go.
                            if let Some(c) = current.take() {
                                abort_run(c).await;
                            }
                            return match ending {
                                Ending::Signal => Ok(()),
                                Ending::ParentGone(p) => Err(AgentError::ParentGone(p)),
                            };
                        }
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        unreachable_since = None;
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
                    Ok(Some(CoordinatorMessage { msg: Some(coordinator_message::Msg::Stop(stop)) })) => {
                        return drain_and_flush(current.take(), tx, Some(&mut inbound), &mut signals, stop.now).await;
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
                ending = signals.next() => {
                    let now = matches!(ending, Ending::ParentGone(_));
                    drain_and_flush(current.take(), tx, Some(&mut inbound), &mut signals, now).await?;
                    return match ending {
                        Ending::Signal => Ok(()),
                        Ending::ParentGone(p) => Err(AgentError::ParentGone(p)),
                    };
                }
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

/// Ends the run and sends its final cumulative snapshot, then closes the session. The drain
/// (in-flight work finishing) is reported once a second like the load, so the coordinator
/// shows it as it happens; a `Stop { now }` or a second signal meanwhile cuts it short, and
/// `now` cuts it short from the start.
async fn drain_and_flush(
    current: Option<Current>,
    tx: mpsc::Sender<RunnerMessage>,
    mut inbound: Option<&mut tonic::Streaming<CoordinatorMessage>>,
    signals: &mut Signals,
    now: bool,
) -> Result<(), AgentError> {
    if let Some(mut c) = current {
        let stop = c.run.stop_handle();
        if now {
            stop.abort();
        } else {
            stop.stop();
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            let message = async {
                match inbound.as_mut() {
                    Some(s) => s.message().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                points = c.run.step() => {
                    if points.is_none() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    let _ = tx.send(wrap(c.snapshot(false))).await;
                }
                msg = message => match msg {
                    Ok(Some(CoordinatorMessage { msg: Some(coordinator_message::Msg::Stop(s)) })) if s.now => stop.abort(),
                    Ok(Some(_)) => {}
                    // The coordinator is gone: nobody will see the rest of the drain.
                    Ok(None) | Err(_) => {
                        inbound = None;
                        stop.abort();
                    }
                },
                _ = signals.next() => stop.abort(),
            }
        }
        let _ = tx.send(wrap(c.snapshot(true))).await;
        let _ = c.run.summarize();
    }
    // Give the final snapshot a moment to leave before the stream closes.
    drop(tx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Ends a run that nobody will hear about: no drain, nothing sent.
async fn abort_run(mut c: Current) {
    c.run.stop_handle().abort();
    while c.run.step().await.is_some() {}
    let _ = c.run.summarize();
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
            // An older coordinator sends no run id: this runner then has one of its own.
            let mut prepared = if a.run_id.is_empty() {
                prepare(&loaded)?
            } else {
                prepare_run(&loaded, a.run_id.clone())?
            };
            prepared.assignment = assignment;
            if let Some(shared) = std::sync::Arc::get_mut(&mut prepared.shared) {
                shared.cursors = crate::script::data::Cursors::partitioned(
                    &shared.scenario.data,
                    a.data_part as usize,
                    a.data_parts as usize,
                );
            }
            let mut opts = EngineOptions {
                start_at: from_unix_ms(a.start_at_unix_ms).or(Some(SystemTime::now())),
                run_from: from_unix_ms(a.run_from_unix_ms),
                vu_id_stride: u64::from(stampede_api::validate::MAX_RUNNERS),
                vu_id_offset: u64::from(cfg.index),
                seed: cfg.seed,
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
