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

/// The spec as the coordinator hands it to runners.
pub(super) fn test_spec(lt: &LoadTest, key: &str) -> TestSpec {
    let file = as_file(lt);
    TestSpec {
        name: key.to_string(),
        yaml: serde_norway::to_string(&file).expect("a LoadTest always serializes"),
        budget: Assignment::from_spec(&lt.spec),
        max_connections: lt.spec.max_connections_per_runner().map(u64::from),
    }
}
