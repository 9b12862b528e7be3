//! The Kubernetes backend: a kube-rs `Controller` over LoadTests and the runner pods they own.
//! Each reconcile observes (the LoadTest, its pods, its token), validates, plans (pure, in
//! `plan`), applies (Secret, Pods, coordinator), then writes status. The coordinator itself is
//! the one `local` uses; here its runners live in pods and register through the `Hub`.
//!
//! Errors are classified: an invalid spec is not an error (it waits for the next change with
//! an `Invalid` condition); API failures are transient and retried with per-object backoff.
//!
//! This module only runs the `Controller` and routes each reconcile: `apply` (a LoadTest that
//! exists) and `cleanup` (one being deleted) do the work, with `validate`, `token`,
//! `tracking`, `pods` and `finish` under them; `context` is what they all share; `plan`,
//! `resources`, `status` and `spec_file` build values without a client.

mod apply;
mod cleanup;
mod context;
mod finish;
pub mod plan;
mod pods;
pub mod resources;
mod spec_file;
pub mod status;
mod token;
mod tracking;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use stampede_api::crd::LoadTest;
use tracing::warn;

use context::lock;
pub use context::{Ctx, Error, Timing};
use resources::{LABEL_MANAGED_BY, MANAGER, test_key};

/// Stops runners and flushes the final results before a LoadTest goes.
pub const FINALIZER: &str = "stampede.dev/flush-results";

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Ctx>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    Controller::new(
        Api::<LoadTest>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Pod>::all(client),
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}")),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        match r {
            Ok(_) => {}
            // A requeue that outlived its object (deleted meanwhile): nothing to do.
            Err(kube::runtime::controller::Error::ObjectNotFound(o)) => {
                tracing::debug!("{o} is gone");
            }
            Err(e) => warn!("reconcile: {e}"),
        }
    })
    .await;
}

async fn reconcile(lt: Arc<LoadTest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<LoadTest> = Api::namespaced(ctx.client.clone(), &ns);
    let key = test_key(&lt);
    let action = finalizer(&api, FINALIZER, lt, |event| async {
        match event {
            FinalizerEvent::Apply(lt) => apply::apply(&lt, &ctx).await,
            FinalizerEvent::Cleanup(lt) => cleanup::cleanup(&lt, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    lock(&ctx.failures).remove(&key);
    Ok(action)
}

/// Transient failures back off per object: 1 s, 2 s, 4 s … up to a minute.
fn error_policy(lt: Arc<LoadTest>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[err.kind()])
        .inc();
    let key = test_key(&lt);
    let mut failures = lock(&ctx.failures);
    let n = failures.entry(key.clone()).or_insert(0);
    *n += 1;
    let wait = Duration::from_secs(1 << (*n - 1).min(6)).min(Duration::from_secs(60));
    warn!(loadtest = %key, attempt = *n, "reconcile failed, retrying in {wait:?}: {err}");
    Action::requeue(wait)
}
