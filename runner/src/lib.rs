//! stampede-runner: the load engine (virtual users, pacing, HTTP/1.1, measurements), the
//! built-in target, and the `stampede` command's subcommands. No Kubernetes code.

// The measurement and budget layer is shared with the operator through the api crate; the
// re-exports keep `crate::stats` and friends meaning what they always did here.
pub use stampede_api::{assignment, console, plan, results, stats, verdict};

pub mod agent;
pub mod cli;
pub mod data;
pub mod engine;
pub mod http1;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;
pub mod template;
pub mod timer;
pub mod user;
pub mod worker;

pub use assignment::Assignment;
pub use engine::EngineOptions;
pub use load::{load_file, load_str, prepare};
pub use results::Summary;
pub use run::Run;
