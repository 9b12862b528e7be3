//! stampede-api: the LoadTest document (types, YAML loading, semantic validation with field
//! paths), the template and threshold syntax, and the budget split. Pure: no engine, no I/O
//! beyond what the caller hands in, no Kubernetes runtime.

pub mod duration;
pub mod instant;
pub mod load;
pub mod scenario;
pub mod spec;
pub mod split;
pub mod template;
pub mod threshold;
pub mod validate;

pub use duration::Duration;
pub use load::{LoadError, parse, parse_and_validate};
pub use spec::{LoadTestFile, LoadTestSpec, Stage};
pub use validate::{DataShape, FieldError, peak_connections, step_name, validate};

/// The runner <-> coordinator protocol (generated from `proto/stampede/v1/runner.proto`).
#[cfg(feature = "proto")]
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("stampede.v1");
}
