//! stampede-runner: the load engine (virtual users, pacing, HTTP/1.1, measurements), the
//! built-in target, and the `stampede` command's subcommands. No Kubernetes code.

pub mod agent;
pub mod assignment;
pub mod cli;
pub mod console;
pub mod data;
pub mod engine;
pub mod http1;
pub mod load;
pub mod plan;
pub mod results;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod template;
pub mod timer;
pub mod user;
pub mod verdict;
pub mod worker;

pub use assignment::Assignment;
pub use engine::EngineOptions;
pub use load::{load_file, load_str, prepare};
pub use results::Summary;
pub use run::Run;
