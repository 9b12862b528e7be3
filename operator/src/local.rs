//! The local backend: `stampede-operator local -f FILE --runners N` runs the coordinator on
//! 127.0.0.1, spawns N `stampede agent` processes, restarts any that dies, treats every save
//! of the file as a live patch, prints the merged live table, and ends with the merged
//! summary and one verdict.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use stampede_api::Assignment;
use stampede_api::plan::Plan;
use stampede_api::stats::Delta;
use stampede_report::console;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::coordinator::{Coordinator, RunnerEvent, Start, TestSpec};
use crate::metrics::{self, Metrics};
use crate::results::{point, summarize};
use stampede_api::results::Point;

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub file: PathBuf,
    /// Runner processes; default `spec.runners`, else 2.
    pub runners: Option<usize>,
    pub runner_bin: PathBuf,
    pub threads_per_runner: Option<usize>,
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// Serve `/metrics` here while the test runs.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Without `startAt`: once every runner is in, they get their budgets and fire together this
/// long after. Runners are processes on a loaded machine, so their start-up time is not
/// guessed: a fixed start lost a whole first second in CI when they were slow to connect.
const START_AFTER_RELEASE: Duration = Duration::from_secs(1);
/// Without `startAt`: runners not registered this long after being spawned join later.
const REGISTER_DEADLINE: Duration = Duration::from_secs(15);
/// After the plan ends: time for in-flight work and final snapshots.
const END_GRACE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// Runners that have not registered by then join later; the others start on time.
const RELEASE_BEFORE_START: Duration = Duration::from_millis(700);

/// The file as a test spec, with what the local backend reads beside the budget.
struct FileSpec {
    spec: TestSpec,
    start_at: Option<SystemTime>,
    suspend: bool,
    runners: Option<u32>,
    /// `metadata.namespace`, else `default`: the `namespace` label of the metrics.
    namespace: String,
}

/// Reads and checks the file. The check is `stampede validate` itself, run from the runner
/// binary: the agents will load the file exactly that way (CSV files included), and the
/// operator needs none of the runner's code to agree with them.
async fn load(file: &Path, runner_bin: &Path) -> Result<FileSpec, String> {
    let check = Command::new(runner_bin)
        .arg("validate")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {} validate: {e}", runner_bin.display()))?;
    if !check.status.success() {
        return Err(String::from_utf8_lossy(&check.stderr)
            .trim_end()
            .to_string());
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let parsed =
        stampede_api::parse_and_validate(&text, &Default::default()).map_err(|e| e.to_string())?;
    let start_at = parsed
        .spec
        .start_at
        .as_deref()
        .and_then(|s| stampede_api::instant::parse_rfc3339(s).ok());
    let spec = TestSpec {
        name: parsed.metadata.name.clone(),
        // A re-read file gets a new one; the coordinator keeps the first (`update_spec`).
        run_id: stampede_api::id::run_id(std::time::SystemTime::now()),
        budget: Assignment::from_spec(&parsed.spec),
        max_connections: parsed.spec.max_connections_per_runner().map(u64::from),
        yaml: text,
    };
    Ok(FileSpec {
        spec,
        start_at,
        suspend: parsed.spec.suspend,
        runners: parsed.spec.runners,
        namespace: parsed
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    })
}

struct Runner {
    index: u32,
    child: Child,
}

fn spawn(
    cfg: &LocalConfig,
    url: &str,
    name: &str,
    token: &str,
    index: u32,
) -> std::io::Result<Runner> {
    let mut cmd = Command::new(&cfg.runner_bin);
    cmd.arg("agent")
        .args([
            "--coordinator",
            url,
            "--loadtest",
            name,
            "--index",
            &index.to_string(),
            // Runners never outlive this process, however it ends (kill -9 included).
            "--exit-with-parent",
        ])
        .env("STAMPEDE_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A terminal's Ctrl-C goes to its whole foreground process group: in a group of
        // their own the runners are stopped by the coordinator, which drains them and
        // collects their last figures, instead of dying with nothing reported.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(t) = cfg.threads_per_runner {
        cmd.args(["--threads", &t.to_string()]);
    }
    // CSV paths in the file are relative to it.
    if let Some(dir) = cfg.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn()?;
    println!("runner {index} started (pid {})", child.id().unwrap_or(0));
    Ok(Runner { index, child })
}

/// The start of a session id: enough to tell runs of one runner apart in the log.
fn short(session: &str) -> String {
    session.chars().take(8).collect()
}

/// The live line for the second ending at `line` (seconds from `t0`): what was measured in
/// it, and what the plan scheduled in it, which is nothing once the plan has ended (the
/// drain) or while a resumed test waits for its start.
fn live_point(spec: &TestSpec, t0: Instant, line: Instant, total: &Delta, prev: &Delta) -> Point {
    let plan = Plan::new(&spec.budget.share(0, 1));
    let t = line.saturating_duration_since(t0).as_secs_f64();
    let rate = spec
        .budget
        .rate
        .map(|_| (plan.count_at(t) - plan.count_at((t - 1.0).max(0.0))).max(0.0));
    let users = if t <= plan.total() {
        plan.connections_at((t - 1.0).max(0.0))
    } else {
        0
    };
    point(t.round() as u64, total, prev, rate, users)
}

/// The live second ending at `next_line`: printed (unless quiet), kept for the summary's
/// series, and the next one scheduled. The same during the load and the drain.
fn live_second(
    coordinator: &Coordinator,
    spec: &TestSpec,
    t0: Instant,
    quiet: bool,
    series: &mut Vec<Point>,
    prev: &mut Delta,
    next_line: &mut Instant,
) {
    let total = coordinator.overall().as_ref().clone();
    let p = live_point(spec, t0, *next_line, &total, prev);
    if !quiet {
        println!("{}", console::live_line(&p, spec.budget.rate.is_some()));
    }
    series.push(p);
    *prev = total;
    *next_line += Duration::from_secs(1);
}

/// SIGINT (Ctrl-C) and SIGTERM: the first stops the test gracefully, the second at once.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Runs a test file with local runner processes; returns the process exit code.
pub async fn run(cfg: LocalConfig) -> u8 {
    let FileSpec {
        mut spec,
        start_at: file_start_at,
        suspend,
        runners: file_runners,
        namespace,
    } = match load(&cfg.file, &cfg.runner_bin).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let count = cfg
        .runners
        .or(file_runners.map(|n| n as usize))
        .unwrap_or(2);
    // The same rule `spec.runners` is held to: a runner without users would be handed rate
    // it can only drop.
    let peak = spec.budget.peak_connections();
    if count as u64 > peak.max(1) {
        eprintln!(
            "--runners {count}: expected at most {peak} (spec.connections, the most users at once): \
             every runner needs at least one user"
        );
        return 1;
    }
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot handle Ctrl-C: {e}");
            return 1;
        }
    };
    // Set by the first Ctrl-C or SIGTERM: when the load was stopped, for the load window.
    let mut interrupted: Option<Instant> = None;
    let mut suspended = suspend;
    let token = stampede_api::id::random_hex(16);
    let start = match file_start_at {
        Some(at) => Start::At(at),
        None => Start::AfterRelease(START_AFTER_RELEASE),
    };
    let coordinator = Coordinator::new(spec.clone(), token.clone(), start, count);
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1: {e}");
            return 1;
        }
    };
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    println!("coordinator listening on {url} for LoadTest {}", spec.name);
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    let _stop_metrics_on_return = stop_metrics.clone().drop_guard();
    if let Some(addr) = cfg.metrics_addr {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("--metrics-addr {addr}: cannot listen: {e}");
                return 1;
            }
        };
        let metrics = Metrics::new(metrics::DEFAULT_GRACE);
        metrics.track(&namespace, &spec.name, coordinator.clone());
        println!(
            "metrics on http://{}/metrics",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        tokio::spawn(metrics::serve(listener, metrics, stop_metrics.clone()));
    }
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(crate::coordinator::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::coordinator::KEEPALIVE_TIMEOUT))
        .add_service(
            stampede_api::proto::coordinator_server::CoordinatorServer::new(coordinator.clone()),
        )
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let spawn_all = |spec: &TestSpec| -> Result<Vec<Runner>, u8> {
        (0..count as u32)
            .map(|i| {
                spawn(&cfg, &url, &spec.name, &token, i).map_err(|e| {
                    eprintln!("cannot start {}: {e}", cfg.runner_bin.display());
                    1
                })
            })
            .collect()
    };
    let mut runners = Vec::new();
    if suspended {
        println!("the test is suspended (spec.suspend); set it to false to start it");
    } else {
        match spawn_all(&spec) {
            Ok(r) => runners = r,
            Err(code) => return code,
        }
    }

    let started = Instant::now();
    // When the runners were (re)spawned, for the registration deadline.
    let mut spawned = started;
    // The instant the plan starts, known once the coordinator has released the budgets.
    let mut t0: Option<Instant> = None;
    let mut file_text = spec.yaml.clone();
    let mut reported = 0usize;
    let mut prev = Delta::default();
    let mut series = Vec::new();
    let mut next_line = started;
    if !cfg.quiet {
        println!("{}", console::live_header());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = signals.next() => {
                if interrupted.is_none() {
                    interrupted = Some(Instant::now());
                    coordinator.stop_all();
                    println!(
                        "interrupted: stopping the runners; requests in flight may finish (Ctrl-C again to stop at once)"
                    );
                } else {
                    coordinator.stop_all_now();
                    println!("stopping at once: requests still in flight count as interrupted");
                }
            }
        }
        let now = Instant::now();
        if interrupted.is_some() {
            // Stopped: no live patches, no restarts; print the drain until every runner
            // has sent its last figures and gone.
            let all_gone = runners
                .iter_mut()
                .all(|r| matches!(r.child.try_wait(), Ok(Some(_))));
            if let Some(t0) = t0
                && now >= next_line
            {
                live_second(
                    &coordinator,
                    &spec,
                    t0,
                    cfg.quiet,
                    &mut series,
                    &mut prev,
                    &mut next_line,
                );
            }
            if all_gone || suspended {
                break;
            }
            continue;
        }
        // A saved file is a live patch.
        if let Ok(text) = std::fs::read_to_string(&cfg.file)
            && text != file_text
        {
            file_text = text;
            match load(&cfg.file, &cfg.runner_bin).await {
                Ok(new) if new.spec.budget.rate.is_some() != spec.budget.rate.is_some() => {
                    eprintln!(
                        "{}: a running test cannot switch between open and closed model; change ignored",
                        cfg.file.display()
                    );
                }
                Ok(new) => {
                    spec = new.spec;
                    let rev = coordinator.update_spec(spec.clone());
                    if rev > 0 {
                        println!("{} changed: revision {rev} pushed", cfg.file.display());
                    } else {
                        println!("{} changed", cfg.file.display());
                    }
                    if new.suspend && !suspended {
                        coordinator.stop_all();
                        suspended = true;
                        println!(
                            "suspended: traffic stopped and runners told to exit; set suspend: false to start again"
                        );
                    } else if !new.suspend && suspended {
                        // A resumed test starts from its beginning; what was measured stays.
                        t0 = None;
                        coordinator.restart(Start::AfterRelease(START_AFTER_RELEASE));
                        for r in runners.iter_mut() {
                            let _ = r.child.kill().await;
                        }
                        match spawn_all(&spec) {
                            Ok(r) => runners = r,
                            Err(code) => return code,
                        }
                        spawned = Instant::now();
                        suspended = false;
                        println!("resumed: the test starts again from its beginning");
                    }
                }
                Err(e) => eprintln!(
                    "{} changed but is invalid, keeping the running spec:\n{e}",
                    cfg.file.display()
                ),
            }
        }
        if suspended {
            continue;
        }
        let release_due = match file_start_at {
            Some(at) => SystemTime::now() + RELEASE_BEFORE_START >= at,
            None => now >= spawned + REGISTER_DEADLINE,
        };
        if release_due {
            coordinator.release();
        }
        if t0.is_none()
            && let Some(at) = coordinator.start_time()
        {
            let start = match at.duration_since(SystemTime::now()) {
                Ok(ahead) => now + ahead,
                Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
            };
            t0 = Some(start);
            next_line = start + Duration::from_secs(1);
        }
        let Some(t0) = t0 else { continue };
        let elapsed = now.saturating_duration_since(t0).as_secs_f64();
        let ending = now >= t0 && elapsed >= spec.budget.total();
        // A runner that died is restarted; meanwhile the survivors carry its budget.
        if !ending {
            for r in runners.iter_mut() {
                if let Ok(Some(status)) = r.child.try_wait() {
                    println!("runner {} exited ({status}); restarting it", r.index);
                    match spawn(&cfg, &url, &spec.name, &token, r.index) {
                        Ok(new) => *r = new,
                        Err(e) => eprintln!("cannot restart runner {}: {e}", r.index),
                    }
                }
            }
        }
        for e in coordinator.take_events() {
            match e {
                RunnerEvent::Connected { index, session } => {
                    println!("runner {index} connected (session {})", short(&session));
                }
                RunnerEvent::Disconnected { index, session } => println!(
                    "runner {index} disconnected (session {}); its budget goes to the others",
                    short(&session)
                ),
            }
        }
        for p in coordinator.propagation().iter().skip(reported) {
            let Some(at) = p.reached_all else { break };
            println!(
                "revision {} reached {}/{} runners in {} ms",
                p.revision,
                p.runners,
                p.runners,
                at.duration_since(p.issued).as_millis()
            );
            reported += 1;
        }
        if now >= next_line {
            live_second(
                &coordinator,
                &spec,
                t0,
                cfg.quiet,
                &mut series,
                &mut prev,
                &mut next_line,
            );
        }
        let all_done = coordinator.all_finished();
        if ending && (all_done || elapsed >= spec.budget.total() + END_GRACE.as_secs_f64()) {
            break;
        }
    }
    coordinator.stop_all();
    for r in runners.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), r.child.wait())
            .await
            .is_err()
        {
            let _ = r.child.kill().await;
        }
    }
    // An agent sends its final snapshot just before it exits: the stream's reader may not
    // have taken it in yet when the exit is seen. Every stream ends once its process is gone.
    let drained = Instant::now() + Duration::from_secs(2);
    while !coordinator.live().is_empty() && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();

    let stopped_after =
        interrupted.map(|at| t0.map_or(0.0, |t0| at.saturating_duration_since(t0).as_secs_f64()));
    let summary = summarize(
        &spec,
        &coordinator.results(),
        series,
        coordinator.start_time().unwrap_or_else(SystemTime::now),
        started.elapsed().as_secs_f64(),
        count,
        stopped_after,
    );
    print!("{}", console::summary_table(&summary));
    if let Some(out) = &cfg.out
        && let Err(e) = std::fs::write(out, summary.to_json_pretty())
    {
        eprintln!("cannot write {}: {e}", out.display());
        return 1;
    }
    if summary.passed { 0 } else { 99 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_plans_nothing_once_the_plan_has_ended() {
        let spec = TestSpec {
            name: "t".into(),
            run_id: String::new(),
            yaml: String::new(),
            budget: Assignment {
                connections: 4,
                rate: Some(100.0),
                stages: Vec::new(),
                duration: 2.0,
                lanes: Default::default(),
                whole: None,
            },
            max_connections: None,
        };
        let t0 = Instant::now();
        let d = Delta::new(1);
        let at = |s| live_point(&spec, t0, t0 + Duration::from_secs(s), &d, &d);
        let load = at(1);
        assert_eq!(
            (load.target_rate, load.target_connections),
            (Some(100.0), 4)
        );
        let drain = at(3);
        assert_eq!(
            (drain.target_rate, drain.target_connections),
            (Some(0.0), 0)
        );
    }
}
