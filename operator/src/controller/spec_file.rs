//! The LoadTest as runners receive it: the file `stampede validate` checks and a runner
//! loads, and the coordinator's `TestSpec` around it. Pure: no client.

use kube::ResourceExt;
use stampede_api::Assignment;
use stampede_api::crd::LoadTest;
use stampede_api::spec::{API_VERSION, KIND, LoadTestFile, Metadata};

use crate::coordinator::TestSpec;

/// The LoadTest as the file a runner loads and `stampede validate` checks.
pub(super) fn as_file(lt: &LoadTest) -> LoadTestFile {
    LoadTestFile {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: lt.name_any(),
            ..Metadata::default()
        },
        spec: lt.spec.clone(),
    }
}

/// The spec as the coordinator hands it to runners. The run id is the one in the status
/// (an operator that restarts mid-run keeps it), else a new one; a coordinator keeps the id
/// it started with whatever later specs carry.
pub(super) fn test_spec(lt: &LoadTest, key: &str) -> TestSpec {
    let file = as_file(lt);
    TestSpec {
        name: key.to_string(),
        run_id: lt
            .status
            .as_ref()
            .and_then(|s| s.run_id.clone())
            .unwrap_or_else(|| stampede_api::id::run_id(std::time::SystemTime::now())),
        yaml: serde_norway::to_string(&file).expect("a LoadTest always serializes"),
        budget: Assignment::from_spec(&lt.spec),
        max_connections: lt.spec.max_connections_per_runner().map(u64::from),
    }
}

/// A LoadTest in namespace `shop` whose one kind is TCP with the TLS block `tls` (YAML flow
/// text): what the TLS checks and the runner pod's Secret variables are tested on.
#[cfg(test)]
pub(super) fn tcp_tls_load_test(tls: &str) -> LoadTest {
    let yaml = format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 1\n  duration: 1s\n  scenario:\n    connection: {{ tcp: {{ address: \"ledger:7443\", tls: {tls} }} }}\n    steps:\n      - {{ send: {{ text: \"x\" }}, expect: {{ delimiter: \"\\n\" }} }}\n"
    );
    let file = stampede_api::parse(&yaml).unwrap();
    let mut lt = LoadTest::new("t", file.spec);
    lt.metadata.namespace = Some("shop".into());
    lt
}
