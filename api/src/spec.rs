//! The LoadTest v1alpha1 document: what a user writes, as serde types.
//! Pure data: no I/O, no engine code. `///` comments are user documentation.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::Scenario;

pub const API_VERSION: &str = "stampede.dev/v1alpha1";
pub const KIND: &str = "LoadTest";

/// A LoadTest file as written on disk or applied with kubectl.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadTestFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: LoadTestSpec,
}

/// The subset of Kubernetes object metadata a LoadTest file may carry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What to run, how hard and for how long.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadTestSpec {
    /// Concurrent virtual users. Each user owns its own connection, opened before it sends.
    /// With `stages`, the number of users the first stage starts from.
    pub connections: u32,
    /// Target iterations per second across the whole test (open model: iterations are
    /// scheduled at fixed instants whether or not earlier ones have finished). With `stages`,
    /// the rate the first stage starts from. Omit it for the closed model, where every user
    /// loops through `steps` with its think times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Ramps: each stage moves `rate` and `connections` linearly from their previous values to
    /// the stage's values over `duration`; the first stage starts from `rate` and
    /// `connections` (either may then be 0, as in `rate: 0` to ramp up from nothing). When
    /// present, the test lasts the sum of the stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// How long the test runs when `stages` is absent, e.g. `30s` or `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// A wall-clock instant (RFC 3339, e.g. `2026-11-11T12:00:00Z`): every user connects first,
    /// then the first iteration fires at this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// What every virtual user does.
    pub scenario: Scenario,
    /// Pass/fail criteria over the merged results, e.g. `p99(checkout) < 250ms`,
    /// `errors < 0.5%`, `rate > 900`, `checks > 99.9%`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
}

/// One ramp: `rate` and `connections` move linearly to these values over `duration`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// How long this ramp lasts.
    pub duration: Duration,
    /// Iterations per second reached at the end of the stage (open model). Omitted: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Concurrent users reached at the end of the stage. Omitted: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}
