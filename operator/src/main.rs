//! `stampede-operator`: parse arguments, start tracing, dispatch. Logic lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
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
    /// Run a LoadTest file with N local runner processes; saving the file patches it live.
    Local(LocalArgs),
}

#[derive(Debug, Args)]
struct LocalArgs {
    /// The LoadTest file (YAML).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Runner processes to start.
    #[arg(long, default_value_t = 2)]
    runners: usize,
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let Cli {
        command: Command::Local(a),
    } = Cli::parse();
    if a.runners == 0 {
        eprintln!("--runners: expected at least 1");
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
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    ExitCode::from(rt.block_on(local::run(cfg)))
}
