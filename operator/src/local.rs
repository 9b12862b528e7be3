//! The local backend: `stampede-operator local -f FILE --runners N` runs the coordinator on
//! 127.0.0.1, spawns N `stampede agent` processes, restarts any that dies, treats every save
//! of the file as a live patch, prints the merged live table, and ends with the merged
//! summary and one verdict.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use stampede_runner::Assignment;
use stampede_runner::console;
use stampede_runner::load::load_str;
use stampede_runner::plan::Plan;
use stampede_runner::results::{Collector, Point, RunInfo, Summary};
use stampede_runner::stats::{Delta, new_histogram};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::coordinator::{Coordinator, TestSpec};
use crate::merge::{merge, step_names};

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub file: PathBuf,
    pub runners: usize,
    pub runner_bin: PathBuf,
    pub threads_per_runner: Option<usize>,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

/// Without `startAt`: runners connect and start their users in this time, then fire together.
const START_DELAY: Duration = Duration::from_secs(2);
/// After the plan ends: time for in-flight work and final snapshots.
const END_GRACE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// Runners that have not registered by then join later; the others start on time.
const RELEASE_BEFORE_START: Duration = Duration::from_millis(700);

/// The file as a test spec, and its `startAt` if it has one.
fn load(file: &Path) -> Result<(TestSpec, Option<SystemTime>), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let loaded = load_str(&text, base).map_err(|e| e.to_string())?;
    let start_at = loaded
        .file
        .spec
        .start_at
        .as_deref()
        .and_then(|s| stampede_api::instant::parse_rfc3339(s).ok());
    let spec = TestSpec {
        name: loaded.file.metadata.name.clone(),
        budget: Assignment::from_spec(&loaded.file.spec),
        yaml: text,
    };
    Ok((spec, start_at))
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
        ])
        .env("STAMPEDE_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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

fn point(
    t: u64,
    now: &Delta,
    prev: &Delta,
    target_rate: Option<f64>,
    target_connections: u64,
) -> Point {
    let mut lat_now = new_histogram();
    let mut lat_prev = new_histogram();
    for s in &now.steps {
        let _ = lat_now.add(&s.latency);
    }
    for s in &prev.steps {
        let _ = lat_prev.add(&s.latency);
    }
    let _ = lat_now.subtract(&lat_prev);
    let pct = |q: f64| (!lat_now.is_empty()).then(|| lat_now.value_at_quantile(q) as f64 / 1000.0);
    let req = |d: &Delta| d.steps.iter().map(|s| s.requests()).sum::<u64>();
    let err = |d: &Delta| {
        d.steps.iter().map(|s| s.errors()).sum::<u64>() + d.connect_errors.iter().sum::<u64>()
    };
    Point {
        t,
        iterations: now.iterations.saturating_sub(prev.iterations),
        requests: req(now).saturating_sub(req(prev)),
        errors: err(now).saturating_sub(err(prev)),
        dropped: now.dropped.saturating_sub(prev.dropped),
        active_connections: now.active_connections,
        target_connections,
        target_rate,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        errors_by_kind: Default::default(),
        bytes_sent: 0,
        bytes_received: 0,
    }
}

/// Runs a test file with local runner processes; returns the process exit code.
pub async fn run(cfg: LocalConfig) -> u8 {
    let (mut spec, file_start_at) = match load(&cfg.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let start_at = file_start_at.unwrap_or_else(|| SystemTime::now() + START_DELAY);
    let coordinator = Coordinator::new(spec.clone(), token.clone(), start_at, cfg.runners);
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
    let server = tonic::transport::Server::builder()
        .add_service(
            stampede_api::proto::coordinator_server::CoordinatorServer::new(coordinator.clone()),
        )
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let mut runners = Vec::new();
    for i in 0..cfg.runners as u32 {
        match spawn(&cfg, &url, &spec.name, &token, i) {
            Ok(r) => runners.push(r),
            Err(e) => {
                eprintln!("cannot start {}: {e}", cfg.runner_bin.display());
                return 1;
            }
        }
    }

    let started = Instant::now();
    let t0 = match start_at.duration_since(SystemTime::now()) {
        Ok(ahead) => started + ahead,
        Err(behind) => started.checked_sub(behind.duration()).unwrap_or(started),
    };
    let mut file_text = spec.yaml.clone();
    let mut reported = 0usize;
    let mut prev = Delta::default();
    let mut series = Vec::new();
    let mut next_line = t0 + Duration::from_secs(1);
    if !cfg.quiet {
        println!("{}", console::live_header());
    }
    loop {
        tokio::time::sleep(POLL).await;
        let now = Instant::now();
        // A saved file is a live patch.
        if let Ok(text) = std::fs::read_to_string(&cfg.file)
            && text != file_text
        {
            file_text = text;
            match load(&cfg.file).map(|(spec, _)| spec) {
                Ok(new) if new.budget.rate.is_some() != spec.budget.rate.is_some() => {
                    eprintln!(
                        "{}: a running test cannot switch between open and closed model; change ignored",
                        cfg.file.display()
                    );
                }
                Ok(new) => {
                    spec = new;
                    let rev = coordinator.update_spec(spec.clone());
                    println!("{} changed: revision {rev} pushed", cfg.file.display());
                }
                Err(e) => eprintln!(
                    "{} changed but is invalid, keeping the running spec:\n{e}",
                    cfg.file.display()
                ),
            }
        }
        if now + RELEASE_BEFORE_START >= t0 {
            coordinator.release();
        }
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
            let snaps = coordinator.results();
            let names = step_names(&snaps);
            let total = merge(&names, &snaps);
            let plan = Plan::new(&spec.budget.share(0, 1));
            let t = (next_line - t0).as_secs();
            let rate = spec.budget.rate.map(|_| plan.rate_at(elapsed));
            let p = point(t, &total, &prev, rate, plan.connections_at(elapsed));
            if !cfg.quiet {
                println!("{}", console::live_line(&p, rate.is_some()));
            }
            series.push(p);
            prev = total;
            next_line += Duration::from_secs(1);
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
    server.abort();

    let snaps = coordinator.results();
    let names = step_names(&snaps);
    let mut collector = Collector::new(names.len(), cfg.runners, spec.budget.rate.is_some());
    collector.totals = merge(&names, &snaps);
    collector.series = series;
    let info = RunInfo {
        name: &spec.name,
        step_names: &names,
        start_time: start_at,
        duration: spec.budget.total(),
        elapsed: started.elapsed().as_secs_f64(),
        target_rate: spec.budget.planned_rate(),
        connections: spec.budget.connections,
    };
    let mut summary = Summary::build(&info, &collector);
    let thresholds = load_str(&spec.yaml, cfg.file.parent().unwrap_or(Path::new(".")))
        .map(|l| l.file.spec.thresholds)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| stampede_api::threshold::Threshold::parse(t).ok())
        .collect::<Vec<_>>();
    stampede_runner::verdict::apply(&mut summary, &thresholds);
    print!("{}", console::summary_table(&summary));
    if let Some(out) = &cfg.out
        && let Err(e) = summary.write_json(out)
    {
        eprintln!("cannot write {}: {e}", out.display());
        return 1;
    }
    if summary.passed { 0 } else { 99 }
}
