//! stampede-operator: the coordinator (split, push, merge, verdict) and its backends. The
//! coordinator talks to runners only through the gRPC protocol in `stampede_api::proto`.

pub mod controller;
pub mod coordinator;
pub mod hub;
pub mod kubernetes;
pub mod leader;
pub mod local;
pub mod merge;
pub mod metrics;
pub mod results;
