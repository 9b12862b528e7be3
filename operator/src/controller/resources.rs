//! The objects the operator creates for a LoadTest, built as values (pure): the token Secret
//! and one runner Pod per index. Names, labels and the runner's environment (the Secret keys
//! the scenario reads among it) are the contract with `stampede agent` and with
//! `kubectl get pods -l`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, EnvVar, EnvVarSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use stampede_api::crd::LoadTest;
use stampede_api::scenario::SecretKeyRef;
use stampede_api::scenario::value_from::secret_variable;

pub const LABEL_LOADTEST: &str = "stampede.dev/loadtest";
pub const LABEL_INDEX: &str = "stampede.dev/runner-index";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "stampede-operator";
pub const TOKEN_KEY: &str = "token";
/// The unprivileged user the runner image runs as (distroless `nonroot`).
const RUNNER_UID: i64 = 65532;

/// What the operator tells every runner pod, whatever the test.
#[derive(Clone, Debug)]
pub struct RunnerDefaults {
    /// Image used when `spec.runner.image` is absent.
    pub image: String,
    /// The operator's gRPC address as seen from runner pods.
    pub coordinator_url: String,
}

/// `namespace/name`: how runners name their test when they register.
pub fn test_key(lt: &LoadTest) -> String {
    format!("{}/{}", lt.namespace().unwrap_or_default(), lt.name_any())
}

pub fn secret_name(lt: &LoadTest) -> String {
    format!("{}-runner-token", lt.name_any())
}

/// Selects every runner pod of a test.
pub fn runner_selector(lt: &LoadTest) -> String {
    format!(
        "{LABEL_LOADTEST}={},{LABEL_MANAGED_BY}={MANAGER}",
        lt.name_any()
    )
}

fn labels(lt: &LoadTest) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_LOADTEST.to_string(), lt.name_any()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
        (
            "app.kubernetes.io/name".to_string(),
            "stampede-runner".to_string(),
        ),
    ])
}

fn owned_meta(lt: &LoadTest) -> ObjectMeta {
    ObjectMeta {
        namespace: lt.namespace(),
        labels: Some(labels(lt)),
        owner_references: lt.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

pub fn token_secret(lt: &LoadTest, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(lt)),
            ..owned_meta(lt)
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

pub fn results_name(lt: &LoadTest) -> String {
    format!("{}-results", lt.name_any())
}

/// The key of the full summary in the results ConfigMap.
pub const SUMMARY_KEY: &str = "summary.json";

/// The full merged summary of a finished test (the schema of `stampede run --out`), owned by
/// the LoadTest: the TTL removes pods, never this.
pub fn results_config_map(lt: &LoadTest, summary_json: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(results_name(lt)),
            ..owned_meta(lt)
        },
        data: Some(BTreeMap::from([(SUMMARY_KEY.to_string(), summary_json)])),
        ..ConfigMap::default()
    }
}

/// The runner index a pod was created for, from its label.
pub fn pod_index(pod: &Pod) -> Option<u32> {
    pod.labels().get(LABEL_INDEX)?.parse().ok()
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    }
}

/// One variable per Secret key the scenario reads (`…From.secretKeyRef`), named as the
/// runner looks it up and filled by the kubelet: the operator never reads these Secrets, and
/// a missing Secret or key keeps the pod from starting, which `kubectl describe pod` shows.
fn secret_variables(lt: &LoadTest) -> Vec<EnvVar> {
    // By variable: a key read by two fields is one variable.
    let refs: BTreeMap<String, &SecretKeyRef> = lt
        .spec
        .scenario
        .connection
        .value_froms()
        .into_iter()
        .filter_map(|(_, v)| v.secret_key_ref.as_ref())
        .map(|r| (secret_variable(&r.name, &r.key), r))
        .collect();
    refs.into_iter()
        .map(|(name, r)| EnvVar {
            name,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
        .collect()
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// Runner pod `index`. Its name is generated (`<test>-runner-<index>-xxxxx`) so a replacement
/// can be created while the pod it replaces is still terminating.
pub fn runner_pod(lt: &LoadTest, index: u32, defaults: &RunnerDefaults) -> Pod {
    let runner = lt.spec.runner.clone().unwrap_or_default();
    let mut labels = labels(lt);
    labels.insert(LABEL_INDEX.into(), index.to_string());
    let mut envs = vec![
        env("STAMPEDE_COORDINATOR", defaults.coordinator_url.clone()),
        env("STAMPEDE_LOADTEST", test_key(lt)),
        env("STAMPEDE_RUNNER_INDEX", index.to_string()),
        EnvVar {
            name: "STAMPEDE_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name(lt),
                    key: TOKEN_KEY.into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    envs.extend(secret_variables(lt));
    envs.extend(runner.env.iter().map(|e| env(&e.name, e.value.clone())));
    let resources = runner.resources.as_ref().map(|r| ResourceRequirements {
        requests: quantities(&r.requests),
        limits: quantities(&r.limits),
        ..ResourceRequirements::default()
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-runner-{index}-", lt.name_any())),
            labels: Some(labels),
            ..owned_meta(lt)
        },
        spec: Some(PodSpec {
            // A runner that dies is replaced by the operator, which re-splits the budget
            // meanwhile; a kubelet restart in place would hide the loss from it.
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(15),
            node_selector: (!runner.node_selector.is_empty()).then(|| runner.node_selector.clone()),
            tolerations: (!runner.tolerations.is_empty()).then(|| {
                runner
                    .tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: t.operator.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                        toleration_seconds: t.toleration_seconds,
                    })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUNNER_UID),
                run_as_group: Some(RUNNER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "runner".into(),
                image: Some(
                    runner
                        .image
                        .clone()
                        .unwrap_or_else(|| defaults.image.clone()),
                ),
                args: Some(vec!["agent".into()]),
                env: Some(envs),
                resources,
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    run_as_non_root: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::spec_file::tcp_tls_load_test as load_test;

    fn envs(pod: &Pod) -> Vec<EnvVar> {
        pod.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default()
    }

    #[test]
    fn each_secret_key_the_scenario_reads_reaches_the_runner_pod_as_a_variable_from_the_secret() {
        let lt = load_test(
            "{ caFrom: { secretKeyRef: { name: ledger-tls, key: ca.crt } }, certFrom: { secretKeyRef: { name: ledger-tls, key: tls.crt } }, keyFrom: { env: LEDGER_KEY } }",
        );
        let defaults = RunnerDefaults {
            image: "stampede:test".into(),
            coordinator_url: "http://op:9090".into(),
        };
        let envs = envs(&runner_pod(&lt, 0, &defaults));
        let from_secrets: Vec<(&str, &str, &str)> = envs
            .iter()
            .filter(|e| e.name.starts_with("STAMPEDE_SECRET_"))
            .map(|e| {
                let r = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .unwrap();
                assert_eq!(r.optional, Some(false));
                assert!(e.value.is_none());
                (e.name.as_str(), r.name.as_str(), r.key.as_str())
            })
            .collect();
        let ca = secret_variable("ledger-tls", "ca.crt");
        let cert = secret_variable("ledger-tls", "tls.crt");
        let mut expected = vec![
            (ca.as_str(), "ledger-tls", "ca.crt"),
            (cert.as_str(), "ledger-tls", "tls.crt"),
        ];
        expected.sort();
        assert_eq!(from_secrets, expected);
        // `env` sources are the user's to set (spec.runner.env): nothing is added for them.
        assert!(envs.iter().all(|e| e.name != "LEDGER_KEY"));
    }

    #[test]
    fn a_scenario_without_secrets_adds_no_variable() {
        let lt = load_test(
            "{ ca: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\" }",
        );
        let defaults = RunnerDefaults {
            image: "stampede:test".into(),
            coordinator_url: "http://op:9090".into(),
        };
        let envs = envs(&runner_pod(&lt, 0, &defaults));
        assert!(envs.iter().all(|e| !e.name.starts_with("STAMPEDE_SECRET_")));
    }
}
