//! stampede-runner: the load engine (virtual users, pacing, measurements), the protocols users
//! speak (HTTP/1.1, HTTP/2, WebSocket, TCP, UDP, TLS for all TCP-based ones), the built-in
//! target, and the `stampede` command's subcommands. No Kubernetes code.

// The measurement and budget layer is shared with the operator through the api crate; the
// re-exports keep `crate::stats` and friends meaning what they always did here.
pub use stampede_api::{assignment, console, plan, results, stats, verdict};

pub mod agent;
pub mod cli;
pub mod data;
pub mod engine;
pub mod http1;
pub mod http2;
pub mod load;
pub mod net;
pub mod reason;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;
pub mod tcp;
pub mod template;
pub mod timer;
pub mod tls;
pub mod udp;
pub mod user;
pub mod worker;
pub mod ws;

pub use assignment::Assignment;
pub use engine::EngineOptions;
pub use load::{load_file, load_str, prepare};
pub use results::Summary;
pub use run::Run;
