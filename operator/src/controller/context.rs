//! What every reconcile shares: the `Ctx` (client, hub, metrics, the tests this replica is
//! running), the `Timing` a test can shorten, the `Error` a reconcile can end with, and the
//! two writes about a LoadTest itself (its Events and its status). Imports no sibling but the
//! pure `resources`, so every other controller module can depend on it without a loop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use stampede_api::crd::{LoadTest, LoadTestStatus};
use stampede_api::results::Point;
use thiserror::Error;
use tracing::warn;

use super::resources::{MANAGER, RunnerDefaults};
use crate::coordinator::Coordinator;
use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::results::Window;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the LoadTest has no namespace")]
    NoNamespace,
    #[error("the token Secret {0} has no `token` key")]
    BadSecret(String),
    #[error("the token Secret {0} belonged to an earlier LoadTest of this name; replaced")]
    StaleSecret(String),
}

impl Error {
    /// The `kind` label of `stampede_operator_reconcile_errors_total`: a fixed set.
    pub fn kind(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(s)) if is_permanent(s) => "api_refused",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.kind(),
                F::AddFinalizer(_) | F::RemoveFinalizer(_) => "finalizer",
                F::UnnamedObject | F::InvalidFinalizer => "object",
            },
            Error::NoNamespace => "object",
            Error::BadSecret(_) | Error::StaleSecret(_) => "secret",
        }
    }
}

/// Timings a test can shorten; the defaults suit a real cluster.
#[derive(Clone, Debug)]
pub struct Timing {
    /// After assignments are released: time for every runner to open its connections.
    pub start_delay: Duration,
    /// Runners that have not registered by then join later; the others start.
    pub release_after: Duration,
    /// After the plan ends: time for final snapshots before the verdict.
    pub end_grace: Duration,
    /// Status refresh while a test runs.
    pub tick: Duration,
    /// How long deletion waits for runners' final results.
    pub flush_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            start_delay: Duration::from_secs(3),
            release_after: Duration::from_secs(120),
            end_grace: Duration::from_secs(20),
            tick: Duration::from_secs(2),
            flush_timeout: Duration::from_secs(15),
        }
    }
}

/// A test this operator is running: its coordinator and the figures shown in status.
pub(super) struct Tracked {
    pub(super) uid: String,
    pub(super) coordinator: Coordinator,
    pub(super) generation: i64,
    pub(super) since: Instant,
    pub(super) suspended: bool,
    pub(super) window: Window,
    /// The run at 1 s resolution, for the final summary; `record_series` fills it.
    pub(super) series: Arc<Mutex<VecDeque<Point>>>,
    pub(super) runners: usize,
}

pub struct Ctx {
    pub client: Client,
    pub hub: Hub,
    pub defaults: RunnerDefaults,
    pub timing: Timing,
    recorder: Recorder,
    pub(super) tracked: Mutex<HashMap<String, Arc<Mutex<Tracked>>>>,
    /// Tests that ended here, by key: (uid, completion). The watch cache can lag the status
    /// this operator just wrote; this keeps such a test from being started again meanwhile.
    pub(super) ended: Mutex<HashMap<String, (String, SystemTime)>>,
    pub(super) failures: Mutex<HashMap<String, u32>>,
    /// What `/metrics` serves; `kubernetes::run` swaps in the one it already serves.
    pub metrics: Arc<Metrics>,
}

impl Ctx {
    pub fn new(client: Client, hub: Hub, defaults: RunnerDefaults, timing: Timing) -> Ctx {
        Ctx {
            recorder: Recorder::new(client.clone(), reporter(None)),
            client,
            hub,
            defaults,
            timing,
            tracked: Mutex::default(),
            ended: Mutex::default(),
            failures: Mutex::default(),
            metrics: Metrics::new(metrics::DEFAULT_GRACE),
        }
    }

    /// Names this replica (its pod) on the Events it writes.
    pub fn set_instance(&mut self, instance: Option<String>) {
        self.recorder = Recorder::new(self.client.clone(), reporter(instance));
    }

    pub(super) fn tracked(&self, key: &str) -> Option<Arc<Mutex<Tracked>>> {
        lock(&self.tracked).get(key).cloned()
    }

    pub(super) async fn event(&self, lt: &LoadTest, type_: EventType, reason: &str, note: String) {
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        // An event that cannot be written must not fail the reconcile.
        if let Err(e) = self.recorder.publish(&ev, &lt.object_ref(&())).await {
            warn!(loadtest = %lt.name_any(), "cannot publish event {reason}: {e}");
        }
    }
}

fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance,
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The status as this operator's field manager applies it; an unchanged one is not written.
pub(super) async fn write_status(
    lt: &LoadTest,
    ctx: &Ctx,
    status: LoadTestStatus,
) -> Result<(), Error> {
    if lt.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<LoadTest> =
        Api::namespaced(ctx.client.clone(), &lt.namespace().unwrap_or_default());
    // Server-side apply of the whole status by the operator's field manager: a field left
    // out (say `current` once the test ends) is removed because this manager owned it. Only
    // the leader writes (the controller runs only while it holds the Lease), and live
    // figures change at most every `results::REFRESH`, so a test costs at most one status
    // write per 5 s while it runs, plus one per phase or runner change.
    let patch = serde_json::json!({
        "apiVersion": LoadTest::api_version(&()),
        "kind": LoadTest::kind(&()),
        "status": status,
    });
    api.patch_status(
        &lt.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// An API refusal that retrying the same request cannot change (bad request, forbidden,
/// too large, invalid), as opposed to conflicts, throttling and server trouble.
pub(super) fn is_permanent(s: &kube::core::Status) -> bool {
    matches!(s.code, 400 | 403 | 413 | 422)
}
