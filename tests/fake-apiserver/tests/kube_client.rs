//! The fake API server as the real `kube::Client` and `kube::runtime::watcher` see it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use stampede_fake_apiserver::FakeApiServer;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "labels": labels }, "data": { "k": "v" }
    }))
    .unwrap()
}

#[tokio::test]
async fn create_get_list_with_selectors_and_conflicts() {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({ "app": "x" })))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({ "app": "y" })))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));

    let dup = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(dup, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));

    let xs = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(xs.items.len(), 1);
    assert_eq!(xs.items[0].metadata.name.as_deref(), Some("a"));
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let all: Api<ConfigMap> = Api::all(fake.client());
    assert_eq!(
        all.list(&ListParams::default().fields("metadata.name=b"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // A replace carrying a stale resourceVersion is refused.
    let mut stale = a.clone();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "w" } })),
    )
    .await
    .unwrap();
    stale.data = Some([("k".to_string(), "z".to_string())].into());
    let conflict = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(conflict, kube::Error::Api(s) if s.code == 409));
    let missing = api.get("nope").await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn generation_follows_spec_and_status_has_its_own_subresource() {
    let fake = FakeApiServer::new();
    let api: Api<Pod> = Api::namespaced(fake.client(), "ns");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
        "spec": { "containers": [ { "name": "c", "image": "i:1" } ] }
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
    let ss = PatchParams::apply("test").force();
    // The kubelet's part: status through the subresource; generation does not move.
    let p = api
        .patch_status(
            "p",
            &ss,
            &Patch::Apply(
                json!({ "apiVersion": "v1", "kind": "Pod", "status": { "phase": "Running" } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(p.metadata.generation, Some(1));
    // Status sent to the main resource is ignored; a spec change bumps generation.
    let p = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "phase": "Failed" }, "spec": { "activeDeadlineSeconds": 5 } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(p.metadata.generation, Some(2));
    // A write that changes nothing bumps nothing.
    let rv = p.metadata.resource_version.clone();
    let same = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "activeDeadlineSeconds": 5 } })),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, rv);
    // Server-side apply creates what does not exist.
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    cms.patch(
        "made",
        &ss,
        &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "data": { "a": "b" } })),
    )
    .await
    .unwrap();
    assert_eq!(cms.get("made").await.unwrap().data.unwrap()["a"], "b");
}

#[tokio::test]
async fn finalizers_hold_deletion_and_owners_take_their_dependents_along() {
    let fake = FakeApiServer::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    let mut owner = cm("owner", json!({}));
    owner.metadata.finalizers = Some(vec!["stampede.dev/flush".into()]);
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let mut dep = cm("dep", json!({}));
    dep.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap()
    }))
    .unwrap()]);
    cms.create(&PostParams::default(), &dep).await.unwrap();

    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    let held = cms.get("owner").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "a finalizer holds the object"
    );
    assert!(
        cms.get("dep").await.is_ok(),
        "dependents stay while the owner is finalizing"
    );

    cms.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                { "op": "remove", "path": "/metadata/finalizers" }
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(
        cms.get("owner").await.is_err(),
        "gone once the last finalizer is removed"
    );
    assert!(
        cms.get("dep").await.is_err(),
        "the owned object was collected"
    );
}

#[tokio::test]
async fn the_runtime_watcher_lists_then_follows_changes() {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let collect = async {
        while let Some(e) = events.try_next().await.unwrap() {
            match e {
                watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                    seen.push(format!("apply {}", o.metadata.name.unwrap()))
                }
                watcher::Event::Delete(o) => {
                    seen.push(format!("delete {}", o.metadata.name.unwrap()))
                }
                watcher::Event::InitDone => {
                    seen.push("init-done".into());
                    api.create(&PostParams::default(), &cm("after", json!({})))
                        .await
                        .unwrap();
                    api.delete("before", &DeleteParams::default())
                        .await
                        .unwrap();
                }
                watcher::Event::Init => {}
            }
            if seen.len() == 4 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), collect)
        .await
        .expect("events arrive");
    assert_eq!(
        seen,
        ["apply before", "init-done", "apply after", "delete before"]
    );
}
