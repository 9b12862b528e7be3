//! The `stampede` subcommands: argument types and what each does. `main.rs` only dispatches.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::console::count;
use crate::engine::EngineOptions;
use crate::engine::run::Run;
use crate::load::{LoadFailure, load_file, prepare, refuse_suspended};

/// Exit code when the test ran but a threshold failed.
pub const EXIT_THRESHOLDS_FAILED: u8 = 99;
/// Exit code when the test could not run (bad file, unreachable target setup, I/O).
pub const EXIT_COULD_NOT_RUN: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "stampede",
    version,
    about = "Realistic load tests: one connection per virtual user."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a LoadTest file on this machine.
    Run(RunArgs),
    /// Check a LoadTest file without sending anything.
    Validate(ValidateArgs),
    /// Serve the built-in demo target.
    Target(TargetArgs),
    /// Run as one runner of a coordinated test (started by `stampede-operator`).
    Agent(AgentArgs),
    /// Turn a summary JSON (`run --out`) into a report: an HTML page, or the summary table.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The summary JSON written by `stampede run --out` or `stampede-operator local --out`.
    pub summary: PathBuf,
    /// Write a self-contained HTML report (charts included, opens offline) here. Without it,
    /// the summary table is printed as `stampede run` prints it.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The coordinator's gRPC address, e.g. http://127.0.0.1:9090.
    #[arg(long, env = "STAMPEDE_COORDINATOR")]
    pub coordinator: String,
    /// The per-test token the coordinator handed out.
    #[arg(long, env = "STAMPEDE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The LoadTest this runner belongs to.
    #[arg(long, env = "STAMPEDE_LOADTEST")]
    pub loadtest: String,
    /// This runner's index among the test's runners.
    #[arg(long, env = "STAMPEDE_RUNNER_INDEX")]
    pub index: u32,
    /// Worker threads (default: one per core).
    #[arg(long, env = "STAMPEDE_THREADS")]
    pub threads: Option<usize>,
    /// Stop the load once the coordinator has been unreachable this long (a leader takeover
    /// takes about the lease duration, 15 s by default).
    #[arg(
        long,
        env = "STAMPEDE_ORPHAN_AFTER",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub orphan_after: stampede_api::Duration,
    /// Stop at once when the process that started this runner exits (set by
    /// `stampede-operator local`).
    #[arg(long)]
    pub exit_with_parent: bool,
    /// Seed users' random streams, as `stampede run --seed` (ids are unique across runners,
    /// so runners given one seed draw as one process would).
    #[arg(long, env = "STAMPEDE_SEED")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The LoadTest file (YAML).
    pub file: PathBuf,
    /// Write the summary JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "STAMPEDE_THREADS")]
    pub threads: Option<usize>,
    /// Print only the summary, not a line a second.
    #[arg(long)]
    pub quiet: bool,
    /// Seed every user's random stream: the same seed draws the same `random`,
    /// `randomString`, `zipf`, `gaussian` and `uuid` values for the same `{{ vu.id }}`
    /// (default: a new seed each run).
    #[arg(long, env = "STAMPEDE_SEED")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The LoadTest file (YAML).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// HTTP/1.1, HTTP/2 (cleartext) and WebSocket (/ws, /ws/broadcast?every=, /ws/drop?after=).
    /// A bare port is on 127.0.0.1 (`8181` is 127.0.0.1:8181).
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "STAMPEDE_TARGET_LISTEN",
        value_name = "ADDR|PORT",
        value_parser = listen_addr
    )]
    pub listen: SocketAddr,
    /// TLS with a self-signed certificate: HTTPS, HTTP/2, WSS, and TCP echo for clients that
    /// ask for no ALPN protocol. Default: port 8443 on the --listen address; a bare port is on
    /// the --listen IP; `off` for none.
    #[arg(long, value_name = "ADDR|PORT|off")]
    pub tls_listen: Option<String>,
    /// TCP echo. Default: port 7000 on the --listen address; a bare port is on the --listen
    /// IP; `off` for none.
    #[arg(long, value_name = "ADDR|PORT|off")]
    pub tcp_listen: Option<String>,
    /// UDP echo. Default: port 7001 on the --listen address; a bare port is on the --listen
    /// IP; `off` for none.
    #[arg(long, value_name = "ADDR|PORT|off")]
    pub udp_listen: Option<String>,
    /// Bind with SO_REUSEPORT, so several target processes share the ports (one process holds
    /// fewer connections than its open-file limit).
    #[arg(long)]
    pub reuse_port: bool,
}

/// `--listen`: an address, or a bare port on the default IP (127.0.0.1, as in the default
/// 127.0.0.1:8080).
fn listen_addr(v: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = v.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    v.parse()
        .map_err(|_| "expected an address such as 127.0.0.1:8080, or a port such as 8080".into())
}

/// An optional listen address flag: `off`, an address, a bare port on `base`'s IP, or the
/// default port on `base`'s IP (any free port when `base` asks for one, so several targets
/// can run side by side).
fn listen_flag(
    flag: &str,
    value: Option<&str>,
    base: SocketAddr,
    port: u16,
) -> Result<Option<SocketAddr>, String> {
    match value {
        None if base.port() == 0 => Ok(Some(SocketAddr::new(base.ip(), 0))),
        None => Ok(Some(SocketAddr::new(base.ip(), port))),
        Some("off") => Ok(None),
        Some(v) => match v.parse::<u16>() {
            Ok(p) => Ok(Some(SocketAddr::new(base.ip(), p))),
            Err(_) => v.parse().map(Some).map_err(|_| {
                format!(
                    "--{flag}: expected an address such as 127.0.0.1:{port}, a port, or off; found {v:?}"
                )
            }),
        },
    }
}

/// `--threads`: at least 1 when given (0 threads would run nothing).
fn threads_flag(threads: Option<usize>) -> Result<Option<usize>, String> {
    match threads {
        Some(0) => Err("--threads: expected at least 1, found 0".into()),
        t => Ok(t),
    }
}

fn report_load_failure(file: &std::path::Path, e: &LoadFailure) {
    match e {
        LoadFailure::Invalid(errs) => {
            eprintln!(
                "{}: {}:",
                file.display(),
                count(errs.len() as u64, "problem", "problems")
            );
            for err in errs {
                eprintln!("  {err}");
            }
        }
        other => eprintln!("{other}"),
    }
}

/// What `validate` says of a valid spec: users, model, steps, thresholds. With stages, the
/// users and the rate are the most any stage reaches (a ramp from 0 is not a test of 0 users).
pub fn describe(s: &stampede_api::LoadTestSpec) -> String {
    let up_to = if s.stages.is_empty() { "" } else { "up to " };
    let users = count(stampede_api::peak_connections(s), "user", "users");
    let model = match s.rate {
        None => "closed model".to_string(),
        Some(r) => {
            let peak = s.stages.iter().filter_map(|st| st.rate).fold(r, f64::max);
            format!("{up_to}{peak}/s open model")
        }
    };
    format!(
        "{up_to}{users}, {model}, {}, {}",
        count(s.scenario.steps.len() as u64, "step", "steps"),
        count(s.thresholds.len() as u64, "threshold", "thresholds")
    )
}

pub fn validate(args: ValidateArgs) -> u8 {
    match load_file(&args.file) {
        Ok(l) => {
            println!(
                "{}: valid — {}",
                args.file.display(),
                describe(&l.file.spec)
            );
            0
        }
        Err(e) => {
            report_load_failure(&args.file, &e);
            EXIT_COULD_NOT_RUN
        }
    }
}

pub async fn run(args: RunArgs) -> u8 {
    // Flags first: each is cheaper to check than the file, and all of them before any load.
    let threads = match threads_flag(args.threads) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    if let Some(Err(e)) = args.out.as_deref().map(stampede_api::results::check_out) {
        eprintln!("{e}");
        return EXIT_COULD_NOT_RUN;
    }
    let prepared = match load_file(&args.file)
        .and_then(refuse_suspended)
        .and_then(|l| prepare(&l))
    {
        Ok(p) => p,
        Err(e) => {
            report_load_failure(&args.file, &e);
            return EXIT_COULD_NOT_RUN;
        }
    };
    let mut opts = EngineOptions {
        seed: args.seed,
        ..EngineOptions::default()
    };
    if let Some(t) = threads {
        opts.threads = t;
    }
    let open = prepared.assignment.rate.is_some();
    let run = match Run::start(prepared, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start worker threads: {e}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    if let Some(w) = &run.fd_warning {
        eprintln!("warning: {w}");
    }
    // Ctrl-C (or SIGTERM) ends the test early and a second one cuts the drain short; what
    // was measured is still summarised either way.
    let stop = run.stop_handle();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if stop.is_stopped() {
                eprintln!("stopping at once: requests still in flight count as interrupted");
                stop.abort();
                return;
            }
            eprintln!(
                "\ninterrupted: stopping users; requests in flight may finish (Ctrl-C again to stop at once)"
            );
            stop.stop();
        }
    });
    if !args.quiet {
        println!("{}", crate::console::live_header());
    }
    let quiet = args.quiet;
    let summary = run
        .finish(|p| {
            if !quiet {
                println!("{}", crate::console::live_line(p, open));
                let _ = std::io::stdout().flush();
            }
        })
        .await;
    print!("{}", crate::console::summary_table(&summary));
    if let Some(out) = &args.out
        && let Err(e) = std::fs::write(out, summary.to_json_pretty())
    {
        eprintln!("cannot write {}: {e}", out.display());
        return EXIT_COULD_NOT_RUN;
    }
    if summary.passed {
        0
    } else {
        EXIT_THRESHOLDS_FAILED
    }
}

/// `stampede report`: 0 when the report was written (whatever the run's verdict), 1 when the
/// summary cannot be read or is not one, or the report cannot be written.
pub fn report(args: ReportArgs) -> u8 {
    let ReportArgs { summary, html } = args;
    let result = crate::report::load_summary(&summary).and_then(|s| match &html {
        Some(out) => crate::report::write_html(&s, out),
        None => {
            print!("{}", crate::console::summary_table(&s));
            Ok(())
        }
    });
    match result {
        Ok(()) => {
            if let Some(out) = html {
                println!("wrote {}", out.display());
            }
            0
        }
        Err(e) => {
            eprintln!("stampede report: {e}");
            EXIT_COULD_NOT_RUN
        }
    }
}

pub async fn target(args: TargetArgs) -> u8 {
    let flags = (|| {
        Ok::<_, String>(crate::target::TargetConfig {
            http: args.listen,
            tls: listen_flag("tls-listen", args.tls_listen.as_deref(), args.listen, 8443)?,
            tcp: listen_flag("tcp-listen", args.tcp_listen.as_deref(), args.listen, 7000)?,
            udp: listen_flag("udp-listen", args.udp_listen.as_deref(), args.listen, 7001)?,
            reuse_port: args.reuse_port,
        })
    })();
    let cfg = match flags {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    // Every connection is a file descriptor; take all the process may have.
    let _ = crate::protocol::net::raise_nofile(0);
    match crate::target::Target::start_with(cfg.clone()).await {
        Ok(t) => {
            // The first line is what scripts read; a reader may close the pipe after it, so
            // nothing here may panic on a failed write.
            let mut banner = format!(
                "stampede target listening on http://{}\n  HTTP/1.1, HTTP/2 (prior knowledge), WebSocket: ws://{}/ws, /ws/broadcast?every=100ms, /ws/drop?after=1s\n",
                t.addr, t.addr
            );
            if let Some(a) = t.tls_addr {
                banner += &format!(
                    "  TLS (self-signed): https://{a}, wss://{a}/ws, TCP echo without ALPN\n"
                );
            }
            if let Some(a) = t.tcp_addr {
                banner += &format!("  TCP echo: {a}\n");
            }
            if let Some(a) = t.udp_addr {
                banner += &format!("  UDP echo: {a}\n");
            }
            let mut out = std::io::stdout();
            let _ = out.write_all(banner.as_bytes());
            let _ = out.flush();
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("cannot handle SIGTERM: {e}");
                        return EXIT_COULD_NOT_RUN;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            t.shutdown();
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_COULD_NOT_RUN
        }
    }
}

pub async fn agent(args: AgentArgs) -> u8 {
    if let Err(e) = threads_flag(args.threads) {
        eprintln!("stampede agent: {e}");
        return EXIT_COULD_NOT_RUN;
    }
    let cfg = crate::agent::AgentConfig {
        coordinator: args.coordinator,
        token: args.token,
        loadtest: args.loadtest,
        index: args.index,
        threads: args.threads,
        orphan_after: args.orphan_after.as_std(),
        exit_with_parent: args.exit_with_parent,
        seed: args.seed,
    };
    match crate::agent::run(cfg).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stampede agent: {e}");
            EXIT_COULD_NOT_RUN
        }
    }
}
