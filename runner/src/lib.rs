//! stampede-runner, in layers: `engine` (pacing, workers, virtual users, measurements),
//! `protocol` (what users speak: HTTP/1.1, HTTP/2, WebSocket, TCP, UDP, TLS for all TCP-based
//! ones, one folder per kind), `target` (the built-in demo servers, apart from the clients
//! they test), and the `stampede` command's subcommands on top (`cli`, `agent`, `load`,
//! `report`). No Kubernetes code.

// The measurement and budget layer is shared with the operator through the api crate; the
// re-exports keep `crate::stats` and friends meaning what they always did here.
pub use stampede_api::{assignment, plan, results, stats, verdict};
pub use stampede_report::console;

pub mod agent;
pub mod cli;
pub mod engine;
pub mod load;
pub mod protocol;
pub mod report;
pub mod script;
pub mod target;
pub mod value_from;

pub use assignment::Assignment;
pub use engine::EngineOptions;
pub use engine::run::Run;
pub use load::{load_file, load_str, prepare, prepare_run};
pub use results::Summary;
