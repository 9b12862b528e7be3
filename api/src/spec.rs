//! The LoadTest v1alpha1 document: what a user writes, as serde types.
//! Pure data: no I/O, no engine code. `///` comments are user documentation.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::runner_pod::RunnerPod;
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
// kube's printcolumn(...) repeats keys on purpose; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource, schemars::JsonSchema))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "stampede.dev",
        version = "v1alpha1",
        kind = "LoadTest",
        namespaced,
        shortname = "lt",
        category = "stampede",
        status = "crate::crd::LoadTestStatus",
        derive = "PartialEq",
        doc = "A load test: virtual users, each with its own connection, run a scenario against a target at a rate and user count that can be changed while the test runs. The operator starts runner pods, splits the budget across them and reports merged results in status.",
        printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
        printcolumn(name = "Runners", type_ = "string", json_path = ".status.runners.summary", description = "Runners connected / runners wanted"),
        printcolumn(name = "Rate", type_ = "number", json_path = ".spec.rate", description = "Target iterations per second"),
        printcolumn(name = "Achieved", type_ = "number", json_path = ".status.current.rate", description = "Iterations per second over the last seconds"),
        printcolumn(name = "P99", type_ = "string", json_path = ".status.current.p99", description = "99th percentile latency over the last seconds"),
        printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    ),
    schemars(extend("x-kubernetes-validations" = spec_rules()))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadTestSpec {
    /// How many runners share the budget: runner pods in a cluster, `stampede agent` processes
    /// for `stampede-operator local`; ignored by `stampede run`. Default: ceil(peak connections
    /// / runner.maxConnections), or 1 without maxConnections (2 processes locally). Changing it
    /// scales the runners while the test runs; the budget is re-split exactly across them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 1000)))]
    pub runners: Option<u32>,
    /// Concurrent virtual users across all runners. Each user owns its own connection, opened before it sends.
    /// With `stages`, the number of users the first stage starts from.
    pub connections: u32,
    /// Target iterations per second across the whole test (open model: iterations are
    /// scheduled at fixed instants whether or not earlier ones have finished). With `stages`,
    /// the rate the first stage starts from. Omit it for the closed model, where every user
    /// loops through `steps` with its think times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0.0)))]
    pub rate: Option<f64>,
    /// Ramps: each stage moves `rate` and `connections` linearly from their previous values to
    /// the stage's values over `duration`; the first stage starts from `rate` and
    /// `connections` (either may then be 0, as in `rate: 0` to ramp up from nothing). When
    /// present, the test lasts the sum of the stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 100)))]
    pub stages: Vec<Stage>,
    /// New connections per second across the whole test while users connect (at the start,
    /// and as stages or patches add users), split across runners like `connections`. Default:
    /// no pacing, every user connects at once (a connection storm). Reconnects after a
    /// failure back off on their own and are not paced by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1.0)))]
    pub connect_rate: Option<f64>,
    /// How long the test runs when `stages` is absent, e.g. `30s` or `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// A wall-clock instant (RFC 3339, e.g. `2026-11-11T12:00:00Z`): every user connects first,
    /// then the first iteration fires at this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// `true` stops the traffic now: every connection closes and the runner pods are removed
    /// (phase `Stopped`); results so far are kept. Setting it back to `false` starts the
    /// runners again and the test runs its `duration` or `stages` from the beginning, its
    /// results adding to those already measured.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// What every virtual user does.
    pub scenario: Scenario,
    /// Pass/fail criteria over the merged results, e.g. `p99(checkout) < 250ms`,
    /// `errors < 0.5%`, `rate > 900`, `checks > 99.9%`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", schemars(length(max = 100)))]
    pub thresholds: Vec<String>,
    /// Where and how big runner pods are (operator only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerPod>,
    /// Seconds after the test ends (Succeeded or Failed) at which the operator removes its
    /// runner pods and token. The LoadTest and its results in `status` stay. Default: pods are
    /// kept until the LoadTest is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0)))]
    pub ttl_seconds_after_finished: Option<u32>,
}

impl LoadTestSpec {
    /// `runner.maxConnections`: the most users one runner may hold, if capped.
    pub fn max_connections_per_runner(&self) -> Option<u32> {
        self.runner.as_ref().and_then(|r| r.max_connections)
    }
}

/// One ramp: `rate` and `connections` move linearly to these values over `duration`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// How long this ramp lasts.
    pub duration: Duration,
    /// Iterations per second reached at the end of the stage (open model). Omitted: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0.0)))]
    pub rate: Option<f64>,
    /// Concurrent users reached at the end of the stage. Omitted: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

#[cfg(feature = "kube")]
/// Admission rules on `spec` (CEL). What CEL cannot check (templates, JSONPaths, thresholds
/// naming steps) the operator checks and reports in the `Invalid` condition.
pub fn spec_rules() -> serde_json::Value {
    serde_json::json!([
        {
            "rule": "has(self.duration) != has(self.stages)",
            "message": "set exactly one of spec.duration or spec.stages"
        },
        {
            "rule": "has(self.stages) || self.connections >= 1",
            "message": "spec.connections must be at least 1",
            "fieldPath": ".connections"
        },
        {
            "rule": "has(self.stages) || !has(self.rate) || self.rate > 0.0",
            "message": "spec.rate must be above 0 (only a test with stages may ramp up from 0)",
            "fieldPath": ".rate"
        },
        {
            "rule": "!has(self.stages) || has(self.rate) || self.stages.all(s, !has(s.rate))",
            "message": "a stage rate needs spec.rate (the open model); without spec.rate users loop closed",
            "fieldPath": ".stages"
        },
        {
            "rule": "has(self.rate) == has(oldSelf.rate)",
            "message": "a test cannot switch between the open model (spec.rate) and the closed model while it exists; create a new LoadTest",
            "fieldPath": ".rate"
        }
    ])
}
