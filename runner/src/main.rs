//! `stampede`: parse arguments, start tracing, dispatch. Logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use stampede_runner::cli::{self, Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    let code = match args.command {
        Command::Validate(a) => cli::validate(a),
        Command::Report(a) => cli::report(a),
        // The engine runs its own worker threads; this runtime only collects and prints.
        Command::Run(a) => current_thread().block_on(cli::run(a)),
        Command::Target(a) => multi_thread().block_on(cli::target(a)),
        Command::Agent(a) => current_thread().block_on(cli::agent(a)),
    };
    ExitCode::from(code)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
