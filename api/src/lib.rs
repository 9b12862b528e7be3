//! stampede-api: the LoadTest document (types, YAML loading, semantic validation with field
//! paths), the template and threshold syntax, the budget split and plan, and the measurement
//! types every runner and the operator share (per-step stats, snapshots' HDR histograms, the
//! summary, the threshold verdict, its console and HTML renderings). Pure: no engine, no I/O
//! beyond what the caller hands in, no Kubernetes runtime.

pub mod assignment;
#[cfg(feature = "kube")]
pub mod crd;
pub mod duration;
pub mod hdr_add;
pub mod id;
pub mod instant;
pub mod load;
pub mod plan;
pub mod results;
pub mod runner_pod;
pub mod scenario;
pub mod spec;
pub mod split;
pub mod stats;
pub mod template;
pub mod threshold;
pub mod units;
pub mod validate;
pub mod verdict;

pub use assignment::Assignment;
pub use duration::Duration;
pub use load::{LoadError, parse, parse_and_validate};
pub use spec::{LoadTestFile, LoadTestSpec, Stage};
pub use validate::{DataShape, FieldError, peak_connections, step_name, validate};

/// Decodes standard base64 (padding optional); `None` when it is not base64.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .ok()
        .or_else(|| STANDARD_NO_PAD.decode(s).ok())
}

/// The runner <-> coordinator protocol (generated from `proto/stampede/v1/runner.proto`).
#[cfg(feature = "proto")]
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("stampede.v1");
}
