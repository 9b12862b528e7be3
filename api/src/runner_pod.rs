//! `spec.runner`: how runner pods are placed and sized in a cluster. Plain data mirroring the
//! few Kubernetes fields a user sets, so the runner and `stampede run` need no Kubernetes types;
//! the operator translates them into a Pod. `///` comments are user documentation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Settings for the runner pods the operator creates. Ignored by `stampede run` and
/// `stampede-operator local`, which start no pods.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunnerPod {
    /// Container image of the runner, e.g. `ghcr.io/stampede-dev/stampede:0.1.0`. Default: the
    /// image the operator was started with (`--runner-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory for each runner container, as in a Pod's `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The most virtual users one runner may hold. When `spec.runners` is absent the operator
    /// starts ceil(peak connections / maxConnections) runners; while a runner is being replaced
    /// the others never take more than this many users each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub max_connections: Option<u32>,
    /// Node labels a runner pod must match, as in a Pod's `nodeSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints runner pods tolerate, as in a Pod's `tolerations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables for the runner container. Names starting with `STAMPEDE_`
    /// are reserved for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// Compute resources, as in a container's `resources`: quantities such as `500m`, `2` or `1Gi`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Resources the scheduler reserves for the runner, e.g. `{cpu: "2", memory: 1Gi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// The most the runner may use, e.g. `{cpu: "4", memory: 2Gi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// A toleration, as in a Pod's `tolerations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key to tolerate; empty with operator `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (the default: key and value must match) or `Exists` (any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The taint value to match with operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect to match: `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty
    /// matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// With effect `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// An environment variable with a literal value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name, e.g. `RUST_LOG`.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}
