//! The Kubernetes face of the LoadTest (feature `kube`): the status the operator writes, the
//! admission rules (CEL) that the API server checks before the operator sees an object, the
//! JSON schemas of the few types serde shapes by hand, and the CRD as YAML.
//!
//! Every schema here must be *structural* (each node typed, or explicitly open with
//! `x-kubernetes-preserve-unknown-fields`), or the API server rejects the whole CRD; the test
//! `crd_schema_is_structural` walks the generated schema to hold that line without a cluster.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use crate::spec::LoadTest;

/// Where a LoadTest is in its life.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted; runner pods are being created.
    Pending,
    /// Runners are connecting and opening their users' connections.
    Initializing,
    /// Traffic is flowing.
    Running,
    /// The test ran to its end and every threshold passed.
    Succeeded,
    /// The test ran to its end and a threshold failed.
    Failed,
    /// Traffic was stopped before the end (`spec.suspend`, or the LoadTest is being deleted).
    Stopped,
    /// The spec cannot run; the `Invalid` condition names the field. Nothing was created.
    Invalid,
}

impl Phase {
    /// Succeeded and Failed: the test is over and will not run again.
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// What the operator observed; written only by the operator.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestStatus {
    /// Pending, Initializing, Running, Succeeded, Failed, Stopped or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run's `{{ run.id }}`: the same on every runner and in the summary, so what this
    /// run wrote can be told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When traffic started (the synchronized start of the first iterations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the test ended (Succeeded or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Runner pods wanted and runners connected to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<RunnersStatus>,
    /// Merged measurements over the last few seconds, refreshed while the test runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentStatus>,
    /// Totals over the whole test so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<TotalsStatus>,
    /// Per-step results over the whole test so far, merged across runners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    /// Every threshold of the spec, evaluated over the merged results when the test ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdStatus>,
    /// The ConfigMap (owned by this LoadTest) that holds the full summary JSON, key
    /// `summary.json`, once the test has ended: `stampede report` renders it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_config_map: Option<String>,
    /// Standard conditions: Ready, Progressing, Complete, Failed, Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Runner counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnersStatus {
    /// Runners the budget is meant to be split across.
    pub desired: u32,
    /// Runners connected to the operator and running their part.
    pub ready: u32,
    /// `ready/desired`, for `kubectl get`.
    pub summary: String,
}

/// Merged measurements over the last few seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentStatus {
    /// Iterations per second achieved.
    pub rate: f64,
    /// Open connections (virtual users) across all runners.
    pub connections: u64,
    /// Median latency, e.g. `1.8ms`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p50: String,
    /// 99th percentile latency, e.g. `12.4ms`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p99: String,
    /// Failed requests and connects as a fraction of all attempts, 0 to 1.
    pub error_ratio: f64,
}

/// Totals over the whole test.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalsStatus {
    /// Iterations completed.
    pub iterations: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests and connects that failed.
    pub errors: u64,
    /// Scheduled iterations dropped because every user stayed busy (open model).
    pub dropped: u64,
}

/// One step's merged results.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's name in the scenario.
    pub name: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Median latency from the intended start, e.g. `1.8ms`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p50: String,
    /// 95th percentile latency.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p95: String,
    /// 99th percentile latency.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p99: String,
}

/// One threshold and its verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdStatus {
    /// The threshold as written in the spec.
    pub expression: String,
    /// The measured value, e.g. `212.4ms` or `0.12%`.
    pub value: String,
    /// Whether it held.
    pub passed: bool,
}

/// A duration as `crate::Duration` reads it: `250ms`, `30s`, `1m30s` (units h, m, s, ms, us).
impl JsonSchema for crate::Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^[0-9]" })
    }
}

/// A JSONPath string, or an object with `jsonPath`, `header` and/or `regex`: CRD schemas cannot
/// say "string or object", so the node is left open and the operator validates it.
impl JsonSchema for crate::scenario::Extract {
    fn schema_name() -> Cow<'static, str> {
        "Extract".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// A status code or a list of them: open for the same reason as `Extract`.
impl JsonSchema for crate::scenario::StatusSet {
    fn schema_name() -> Cow<'static, str> {
        "StatusSet".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// Any JSON value (request bodies).
pub fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// An object of any JSON values (JSONPath → expected value).
pub fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// The CustomResourceDefinition as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> String {
    let crd = LoadTest::crd();
    let body = serde_norway::to_string(&crd).expect("a CRD always serializes");
    format!(
        "# Generated by `stampede-operator crd` from api/src/spec.rs and api/src/crd.rs.\n\
         # Do not edit: run scripts/generate-crds.sh.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(path: &str, node: &serde_json::Value, problems: &mut Vec<String>) {
        let Some(obj) = node.as_object() else {
            problems.push(format!("{path}: not an object schema"));
            return;
        };
        let open = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&true.into())
            || obj.get("x-kubernetes-int-or-string") == Some(&true.into());
        if !obj.contains_key("type") && !open {
            problems.push(format!("{path}: no type"));
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            problems.push(format!(
                "{path}: properties and additionalProperties together"
            ));
        }
        if obj.get("description").and_then(|d| d.as_str()).is_none()
            && path != "."
            && !path.ends_with("[]")
            && !path.ends_with("{}")
            && !path.contains(".status.conditions[]")
        {
            problems.push(format!(
                "{path}: no description (kubectl explain shows nothing)"
            ));
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for (i, alt) in obj
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .enumerate()
            {
                for banned in ["type", "properties", "description", "default", "nullable"] {
                    if alt.get(banned).is_some() {
                        problems.push(format!("{path}.{key}[{i}]: carries {banned}"));
                    }
                }
            }
        }
        if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                walk(&format!("{path}.{k}"), v, problems);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(&format!("{path}[]"), items, problems);
        }
        if let Some(ap) = obj.get("additionalProperties").filter(|a| a.is_object()) {
            walk(&format!("{path}{{}}"), ap, problems);
        }
    }

    fn schema() -> serde_json::Value {
        let crd = LoadTest::crd();
        let v = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("the CRD has a schema");
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn crd_schema_is_structural_and_every_field_is_documented() {
        let mut problems = Vec::new();
        walk(".", &schema(), &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn crd_yaml_reads_back_as_the_same_definition() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let back: CustomResourceDefinition = serde_norway::from_str(&crd_yaml()).unwrap();
        assert_eq!(back, LoadTest::crd());
    }

    #[test]
    fn the_crd_has_the_printer_columns_and_short_name_users_type() {
        let crd = LoadTest::crd();
        assert_eq!(crd.spec.names.short_names, Some(vec!["lt".to_string()]));
        let cols: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Phase", "Runners", "Rate", "Achieved", "P99", "Age"]);
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .status
                .is_some()
        );
    }

    #[test]
    fn every_admission_rule_matches_a_semantic_check() {
        // Each CEL rule has a fixture that the operator's own validation (which runs whether
        // or not the cluster evaluates CEL) rejects at the same field.
        let rules = crate::spec::spec_rules();
        let paths: Vec<_> = rules
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["rule"].as_str().unwrap().contains("oldSelf"))
            .map(|r| r["fieldPath"].as_str().unwrap_or("").to_string())
            .collect();
        let spec = |extra: &str| {
            format!(
                "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{name: t}}\nspec:\n{extra}\n  scenario:\n    connection: {{http: {{url: 'http://127.0.0.1:1'}}}}\n    steps: [{{request: {{path: /}}}}]\n"
            )
        };
        let cases = [
            (
                "",
                spec(
                    "  connections: 1\n  duration: 1s\n  stages: [{duration: 1s, connections: 2}]",
                ),
            ),
            (".connections", spec("  connections: 0\n  duration: 1s")),
            (".rate", spec("  connections: 1\n  rate: 0\n  duration: 1s")),
            (
                ".stages",
                spec("  connections: 1\n  stages: [{duration: 1s, rate: 5}]"),
            ),
        ];
        assert_eq!(paths, cases.iter().map(|c| c.0).collect::<Vec<_>>());
        for (path, text) in cases {
            let errs = crate::parse_and_validate(&text, &Default::default())
                .expect_err(&text)
                .field_errors();
            let want = format!("spec{path}");
            assert!(
                errs.iter().any(|e| e.path.starts_with(&want)
                    || (path.is_empty() && e.path.starts_with("spec."))),
                "{text}: {errs:?}"
            );
        }
    }
}
