//! `stampede-operator`: parse arguments, start tracing, dispatch. Logic lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use stampede_operator::controller::Timing;
use stampede_operator::controller::resources::RunnerDefaults;
use stampede_operator::kubernetes::{self, OperatorConfig};
use stampede_operator::leader::LeaseConfig;
use stampede_operator::local::{self, LocalConfig};

#[derive(Debug, Parser)]
#[command(
    name = "stampede-operator",
    version,
    about = "Coordinates Stampede runners."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run in a cluster: reconcile LoadTests into runner pods and coordinate them.
    Run(RunArgs),
    /// Print the LoadTest CustomResourceDefinition (YAML).
    Crd,
    /// Run a LoadTest file with N local runner processes; saving the file patches it live.
    Local(LocalArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Where runners connect (gRPC).
    #[arg(long, env = "STAMPEDE_GRPC_ADDR", default_value = "0.0.0.0:9090")]
    grpc_addr: SocketAddr,
    /// The operator's gRPC URL as runner pods reach it (default:
    /// http://stampede-operator.<POD_NAMESPACE>.svc:9090).
    #[arg(long, env = "STAMPEDE_COORDINATOR_URL")]
    coordinator_url: Option<String>,
    /// Runner image for LoadTests that do not set spec.runner.image.
    #[arg(long, env = "STAMPEDE_RUNNER_IMAGE", default_value = concat!("ghcr.io/stampede-dev/stampede:", env!("CARGO_PKG_VERSION")))]
    runner_image: String,
    /// Namespace of the leader Lease (default: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "stampede-system")]
    namespace: String,
    /// This replica's identity in the Lease (default: POD_NAME, else the hostname).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Run without a Lease: only when exactly one replica can ever run.
    #[arg(long)]
    no_leader_election: bool,
    /// How long a leader's Lease lasts without renewal: a crashed leader's tests are taken
    /// over this long after its last renewal.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    lease_duration: stampede_api::Duration,
    /// How often the leader renews its Lease, and a standby tries to take it.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    lease_retry: stampede_api::Duration,
    /// Where Prometheus scrapes /metrics (also /healthz), on every replica.
    #[arg(long, env = "STAMPEDE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
}

#[derive(Debug, Args)]
struct LocalArgs {
    /// The LoadTest file (YAML).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Runner processes to start (default: the file's spec.runners, else 2).
    #[arg(long)]
    runners: Option<usize>,
    /// The `stampede` binary runners are started from (default: next to this binary).
    #[arg(long, env = "STAMPEDE_RUNNER_BIN")]
    runner_bin: Option<PathBuf>,
    /// Worker threads per runner (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the merged summary JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only the summary and runner events, not a line a second.
    #[arg(long)]
    quiet: bool,
    /// Serve Prometheus metrics of the run at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = match Cli::parse().command {
        Command::Crd => {
            print!("{}", stampede_api::crd::crd_yaml());
            return ExitCode::SUCCESS;
        }
        Command::Run(r) => return run_operator(r),
        Command::Local(a) => a,
    };
    if a.runners == Some(0) {
        eprintln!("--runners: expected at least 1");
        return ExitCode::from(1);
    }
    if a.threads == Some(0) {
        eprintln!("--threads: expected at least 1, found 0");
        return ExitCode::from(1);
    }
    // `--out` is checked before the runners start, so a typo does not cost the whole test.
    if let Some(Err(e)) = a.out.as_deref().map(stampede_api::results::check_out) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    let runner_bin = a.runner_bin.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("stampede")))
            .unwrap_or_else(|| PathBuf::from("stampede"))
    });
    let cfg = LocalConfig {
        file: a.file,
        runners: a.runners,
        runner_bin,
        threads_per_runner: a.threads,
        out: a.out,
        quiet: a.quiet,
        metrics_addr: a.metrics_addr,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    ExitCode::from(rt.block_on(local::run(cfg)))
}

fn run_operator(a: RunArgs) -> ExitCode {
    if a.lease_retry >= a.lease_duration {
        eprintln!(
            "--lease-retry: expected less than --lease-duration ({}), found {}",
            a.lease_duration, a.lease_retry
        );
        return ExitCode::from(1);
    }
    let identity = a.identity.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("stampede-operator-{}", std::process::id()))
    });
    let cfg = OperatorConfig {
        grpc_addr: a.grpc_addr,
        metrics_addr: a.metrics_addr,
        runner: RunnerDefaults {
            image: a.runner_image,
            coordinator_url: a.coordinator_url.unwrap_or_else(|| {
                format!(
                    "http://stampede-operator.{}.svc:{}",
                    a.namespace,
                    a.grpc_addr.port()
                )
            }),
        },
        lease: (!a.no_leader_election).then(|| LeaseConfig {
            name: "stampede-operator".into(),
            namespace: a.namespace.clone(),
            identity: identity.clone(),
            duration: a.lease_duration.as_std(),
            retry: a.lease_retry.as_std(),
        }),
        instance: Some(identity),
        timing: Timing::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(kubernetes::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stampede-operator: {e}");
            ExitCode::from(1)
        }
    }
}
