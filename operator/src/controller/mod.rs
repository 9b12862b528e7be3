//! The Kubernetes backend: a kube-rs `Controller` over LoadTests and the runner pods they own.
//! Each reconcile observes (the LoadTest, its pods, its token), validates, plans (pure, in
//! `plan`), applies (Secret, Pods, coordinator), then writes status. The coordinator itself is
//! the one `local` uses; here its runners live in pods and register through the `Hub`.
//!
//! Errors are classified: an invalid spec is not an error (it waits for the next change with
//! an `Invalid` condition); API failures are transient and retried with per-object backoff.

pub mod plan;
pub mod resources;
pub mod status;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use stampede_api::Assignment;
use stampede_api::crd::{LoadTest, LoadTestStatus, Phase, RunnersStatus, TotalsStatus};
use stampede_api::results::{Point, Summary};
use stampede_api::spec::{API_VERSION, KIND, LoadTestFile, Metadata};
use thiserror::Error;
use tracing::{info, warn};

use crate::coordinator::{Coordinator, Start, TestSpec};
use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::results::{Window, record_series, status_parts, summarize, summary_steps};
use plan::{Mode, PodView, desired_runners, plan_pods};
use resources::{
    LABEL_MANAGED_BY, MANAGER, RunnerDefaults, TOKEN_KEY, results_config_map, results_name,
    runner_pod, runner_selector, secret_name, test_key, token_secret,
};
use status::{Conditions, next_status};

/// Stops runners and flushes the final results before a LoadTest goes.
pub const FINALIZER: &str = "stampede.dev/flush-results";

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
struct Tracked {
    uid: String,
    coordinator: Coordinator,
    generation: i64,
    since: Instant,
    suspended: bool,
    window: Window,
    /// The run at 1 s resolution, for the final summary; `record_series` fills it.
    series: Arc<Mutex<VecDeque<Point>>>,
    runners: usize,
}

pub struct Ctx {
    pub client: Client,
    pub hub: Hub,
    pub defaults: RunnerDefaults,
    pub timing: Timing,
    recorder: Recorder,
    tracked: Mutex<HashMap<String, Arc<Mutex<Tracked>>>>,
    /// Tests that ended here, by key: (uid, completion). The watch cache can lag the status
    /// this operator just wrote; this keeps such a test from being started again meanwhile.
    ended: Mutex<HashMap<String, (String, SystemTime)>>,
    failures: Mutex<HashMap<String, u32>>,
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

    fn tracked(&self, key: &str) -> Option<Arc<Mutex<Tracked>>> {
        lock(&self.tracked).get(key).cloned()
    }

    async fn event(&self, lt: &LoadTest, type_: EventType, reason: &str, note: String) {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
            FinalizerEvent::Apply(lt) => apply(&lt, &ctx).await,
            FinalizerEvent::Cleanup(lt) => cleanup(&lt, &ctx).await,
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

/// The LoadTest as the file a runner loads and `stampede validate` checks.
fn as_file(lt: &LoadTest) -> LoadTestFile {
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
fn test_spec(lt: &LoadTest, key: &str) -> TestSpec {
    let file = as_file(lt);
    TestSpec {
        name: key.to_string(),
        yaml: serde_norway::to_string(&file).expect("a LoadTest always serializes"),
        budget: Assignment::from_spec(&lt.spec),
        max_connections: lt.spec.max_connections_per_runner().map(u64::from),
    }
}

/// Semantic checks the API server's schema cannot make, with cluster-only rules.
fn validate(lt: &LoadTest) -> Vec<stampede_api::FieldError> {
    let mut errs = stampede_api::validate(&as_file(lt), &Default::default());
    for (i, d) in lt.spec.scenario.data.iter().enumerate() {
        if d.csv.is_some() {
            errs.push(stampede_api::FieldError {
                path: format!("spec.scenario.data[{i}].csv"),
                message: "runner pods cannot read files next to the LoadTest; use `rows`".into(),
            });
        }
    }
    if let Some((kind, tls)) = lt.spec.scenario.connection.tls() {
        for (field, _) in tls.files() {
            errs.push(stampede_api::FieldError {
                path: format!("spec.scenario.connection.{kind}.tls.{field}"),
                message: "runner pods cannot read files next to the LoadTest; put the PEM text itself here (-----BEGIN …)".into(),
            });
        }
    }
    errs
}

fn pod_view(p: &Pod) -> PodView {
    PodView {
        name: p.name_any(),
        index: resources::pod_index(p),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        deleting: p.metadata.deletion_timestamp.is_some(),
    }
}

fn random_token() -> String {
    stampede_api::id::random_hex(16)
}

/// The test's token: from its Secret, which is created on first sight. A Secret of that name
/// owned by an earlier LoadTest of the same name (not yet garbage collected) is replaced.
async fn ensure_token(lt: &LoadTest, secrets: &Api<Secret>) -> Result<String, Error> {
    let name = secret_name(lt);
    let uid = lt.uid().unwrap_or_default();
    let secret = match secrets.get_opt(&name).await? {
        Some(s) if s.owner_references().iter().any(|o| o.uid == uid) => s,
        Some(_) => {
            secrets.delete(&name, &DeleteParams::background()).await?;
            return Err(Error::StaleSecret(name));
        }
        None => {
            let created = secrets
                .create(&PostParams::default(), &token_secret(lt, &random_token()))
                .await;
            match created {
                Ok(s) => s,
                // Another reconcile (or replica) won the race: use its token.
                Err(kube::Error::Api(s)) if s.is_already_exists() => secrets.get(&name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .ok_or(Error::BadSecret(name))
}

fn parse_start_at(lt: &LoadTest) -> Option<SystemTime> {
    lt.spec
        .start_at
        .as_deref()
        .and_then(|s| stampede_api::instant::parse_rfc3339(s).ok())
}

/// The running test for this LoadTest, created (or replaced, for a new object of the same
/// name) on first sight.
fn track(lt: &LoadTest, ctx: &Ctx, key: &str, token: String, runners: u32) -> Arc<Mutex<Tracked>> {
    let uid = lt.uid().unwrap_or_default();
    if let Some(t) = ctx.tracked(key)
        && lock(&t).uid == uid
    {
        return t;
    }
    let status = lt.status.clone().unwrap_or_default();
    // After an operator restart mid-run the runners keep their timeline; so does the status.
    let start = match (parse_start_at(lt), status.start_time.as_ref()) {
        (Some(at), _) => Start::At(at),
        (None, Some(t)) => Start::At(SystemTime::from(t.0)),
        (None, None) => Start::AfterRelease(ctx.timing.start_delay),
    };
    let coordinator = Coordinator::new(test_spec(lt, key), token, start, runners as usize);
    ctx.hub.insert(key.to_string(), coordinator.clone());
    ctx.metrics.track(
        &lt.namespace().unwrap_or_default(),
        &lt.name_any(),
        coordinator.clone(),
    );
    let series = Arc::new(Mutex::new(VecDeque::new()));
    let taken_over = status.start_time.is_some();
    tokio::spawn(record_series(
        coordinator.clone(),
        Arc::downgrade(&series),
        taken_over,
    ));
    let t = Arc::new(Mutex::new(Tracked {
        uid,
        coordinator,
        generation: lt.metadata.generation.unwrap_or(0),
        since: Instant::now(),
        suspended: false,
        window: Window::default(),
        series: series.clone(),
        runners: runners as usize,
    }));
    lock(&ctx.tracked).insert(key.to_string(), t.clone());
    t
}

fn untrack(ctx: &Ctx, key: &str, ended: bool) -> Option<Arc<Mutex<Tracked>>> {
    ctx.hub.remove(key, ended);
    ctx.metrics.ended(key);
    lock(&ctx.tracked).remove(key)
}

async fn write_status(lt: &LoadTest, ctx: &Ctx, status: LoadTestStatus) -> Result<(), Error> {
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

async fn apply_pods(
    lt: &LoadTest,
    ctx: &Ctx,
    pods: &Api<Pod>,
    views: &[PodView],
    mode: Mode,
    coordinator: Option<&Coordinator>,
) -> Result<(), Error> {
    let live = coordinator.map(Coordinator::live).unwrap_or_default();
    let plan = plan_pods(views, mode, &live);
    if let Some(c) = coordinator {
        let evicted: Vec<u32> = plan.evict.iter().copied().filter(|i| c.evict(*i)).collect();
        if !evicted.is_empty() && matches!(mode, Mode::Run { .. }) {
            ctx.event(
                lt,
                EventType::Warning,
                "RunnerLost",
                format!("runner(s) {evicted:?} gone; their budget was re-split across the others"),
            )
            .await;
        }
    }
    for name in &plan.delete {
        match pods.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for index in &plan.create {
        let created = pods
            .create(
                &PostParams::default(),
                &runner_pod(lt, *index, &ctx.defaults),
            )
            .await;
        match created {
            Ok(_) => {}
            // Pods can stay out for good (a quota, an admission policy, a bad image name):
            // the user must see why, not only a slowing retry in the operator's log.
            Err(kube::Error::Api(s)) if is_permanent(&s) => {
                ctx.event(
                    lt,
                    EventType::Warning,
                    "RunnerPodRefused",
                    format!(
                        "runner pod {index}: {} (HTTP {}); retrying with backoff",
                        s.message, s.code
                    ),
                )
                .await;
                return Err(kube::Error::Api(s).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !plan.create.is_empty() {
        ctx.event(
            lt,
            EventType::Normal,
            "CreatedRunners",
            format!("created runner pod(s) for index {:?}", plan.create),
        )
        .await;
    }
    Ok(())
}

async fn apply(lt: &LoadTest, ctx: &Ctx) -> Result<Action, Error> {
    tracing::debug!(loadtest = %lt.name_any(), "reconcile");
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let key = test_key(lt);
    let generation = lt.metadata.generation.unwrap_or(0);
    let old = lt.status.clone().unwrap_or_default();
    let mut conditions = Conditions::new(&old, generation);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let observed = pods
        .list(&ListParams::default().labels(&runner_selector(lt)))
        .await?;
    let views: Vec<PodView> = observed.items.iter().map(pod_view).collect();

    // Finished: nothing runs again, whatever is patched; the TTL removes the pods and token,
    // never the results.
    let uid = lt.uid().unwrap_or_default();
    let ended_here = lock(&ctx.ended)
        .get(&key)
        .filter(|(u, _)| *u == uid)
        .map(|(_, at)| *at);
    if old.phase.is_some_and(Phase::is_finished) || ended_here.is_some() {
        untrack(ctx, &key, true);
        let done = old
            .completion_time
            .as_ref()
            .map(|t| SystemTime::from(t.0))
            .or(ended_here)
            .unwrap_or_else(SystemTime::now);
        let ttl = lt
            .spec
            .ttl_seconds_after_finished
            .map(|s| done + Duration::from_secs(u64::from(s)));
        let now = SystemTime::now();
        let expired = ttl.is_some_and(|t| t <= now);
        let linger_end = done + ctx.timing.end_grace;
        let mode = Mode::Finished {
            ttl_expired: expired,
            linger_over: linger_end <= now,
        };
        apply_pods(lt, ctx, &pods, &views, mode, None).await?;
        if expired {
            match secrets
                .delete(&secret_name(lt), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if old.phase.is_some_and(Phase::is_finished) {
            // A finished test ignores patches: its conditions hold for this generation too.
            let mut status = LoadTestStatus {
                observed_generation: Some(generation),
                ..old.clone()
            };
            for c in &mut status.conditions {
                c.observed_generation = Some(generation);
            }
            write_status(lt, ctx, status).await?;
        }
        // Wake for the next deadline: runners that should have exited, then the TTL.
        let next = [Some(linger_end), ttl]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        return Ok(match next {
            Some(t) => Action::requeue(
                t.duration_since(now)
                    .unwrap_or_default()
                    .max(Duration::from_millis(100)),
            ),
            None => Action::await_change(),
        });
    }

    // Validate. An invalid spec creates nothing and waits for the next change; a test that is
    // already running goes on with its last valid spec.
    let errs = validate(lt);
    let running = ctx.tracked(&key).is_some_and(|t| lock(&t).uid == uid);
    let invalid = !errs.is_empty();
    if invalid {
        let message = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if old.observed_generation != Some(generation) {
            ctx.event(lt, EventType::Warning, "InvalidSpec", message.clone())
                .await;
        }
        conditions.set("Invalid", true, "InvalidSpec", &message);
        if !running {
            let status = next_status(
                &old,
                Phase::Invalid,
                generation,
                None,
                RunnersStatus {
                    desired: 0,
                    ready: 0,
                    summary: "0/0".into(),
                },
                None,
                None,
                conditions,
            );
            write_status(lt, ctx, status).await?;
            return Ok(Action::await_change());
        }
    } else {
        conditions.set("Invalid", false, "Valid", "the spec is valid");
    }

    let runners = desired_runners(
        lt.spec.runners,
        stampede_api::peak_connections(&lt.spec),
        lt.spec.max_connections_per_runner(),
    );
    let token = ensure_token(lt, &secrets).await?;
    let tracked = track(lt, ctx, &key, token.clone(), runners);

    // Live patches, suspend and resume, and the decisions that need the coordinator.
    let mut events = Vec::new();
    let (coordinator, mode, over, runners) = {
        let mut t = lock(&tracked);
        // While the spec is invalid, the test goes on with its last valid runner count.
        let runners = if invalid { t.runners as u32 } else { runners };
        // The Secret is the truth: a rewritten one is what new runner pods will present.
        t.coordinator.set_token(token);
        if t.generation != generation && !invalid {
            let mut next = test_spec(lt, &key);
            let running = t.coordinator.spec();
            if let Ok(file) = stampede_api::parse(&running.yaml)
                && file.spec.scenario != lt.spec.scenario
            {
                events.push((
                    EventType::Warning,
                    "ScenarioChangeIgnored",
                    "spec.scenario changed while the test exists; runners keep the scenario they started with (create a new LoadTest to run another)".to_string(),
                ));
                let mut spec = lt.spec.clone();
                spec.scenario = file.spec.scenario;
                let mut patched = lt.clone();
                patched.spec = spec;
                next.yaml = test_spec(&patched, &key).yaml;
            }
            let rev = t.coordinator.update_spec(next);
            t.coordinator.set_expected(runners as usize);
            t.runners = runners as usize;
            t.generation = generation;
            info!(loadtest = %key, generation, revision = rev, "spec changed: new assignments pushed");
        }
        if lt.spec.suspend && !t.suspended {
            t.coordinator.stop_all();
            t.suspended = true;
            events.push((
                EventType::Normal,
                "Suspended",
                "traffic stopped; runner pods removed".into(),
            ));
        } else if !lt.spec.suspend && t.suspended {
            let start = match parse_start_at(lt).filter(|at| *at > SystemTime::now()) {
                Some(at) => Start::At(at),
                None => Start::AfterRelease(ctx.timing.start_delay),
            };
            t.coordinator.restart(start);
            t.suspended = false;
            t.since = Instant::now();
            events.push((
                EventType::Normal,
                "Resumed",
                "runner pods are starting again".into(),
            ));
        }
        let c = t.coordinator.clone();
        if !t.suspended && t.since.elapsed() >= ctx.timing.release_after {
            c.release();
        }
        // Validation bounds a test to a month; an instant past the clock's range is never.
        let total = Duration::try_from_secs_f64(c.spec().budget.total()).unwrap_or(Duration::MAX);
        let now = SystemTime::now();
        let after = |d: Duration| {
            c.start_time()
                .and_then(|s| s.checked_add(d))
                .is_some_and(|at| now >= at)
        };
        let ending = after(total);
        let over = !t.suspended
            && ending
            && (c.all_finished() || after(total.saturating_add(ctx.timing.end_grace)));
        let mode = if t.suspended {
            Mode::Stopped
        } else if ending {
            Mode::Ending
        } else {
            Mode::Run { runners }
        };
        (c, mode, over, runners)
    };
    for (type_, reason, note) in events {
        ctx.event(lt, type_, reason, note).await;
    }

    if over {
        return finish(lt, ctx, &tracked, conditions, generation).await;
    }
    apply_pods(lt, ctx, &pods, &views, mode, Some(&coordinator)).await?;

    let ready = coordinator.live().len() as u32;
    let figures = {
        let mut t = lock(&tracked);
        t.window.current(Instant::now(), || coordinator.merged())
    };
    let phase = if lt.spec.suspend {
        Phase::Stopped
    } else {
        match coordinator.start_time() {
            None if ready == 0 => Phase::Pending,
            None => Phase::Initializing,
            Some(s) if s > SystemTime::now() => Phase::Initializing,
            Some(_) => Phase::Running,
        }
    };
    let mut status = next_status(
        &old,
        phase,
        generation,
        coordinator.start_time(),
        RunnersStatus {
            desired: if lt.spec.suspend { 0 } else { runners },
            ready,
            summary: format!("{ready}/{}", if lt.spec.suspend { 0 } else { runners }),
        },
        (phase == Phase::Running).then_some(figures.current),
        Some(figures.totals),
        conditions,
    );
    if !figures.steps.is_empty() {
        status.steps = figures.steps;
    }
    write_status(lt, ctx, status).await?;
    Ok(if lt.spec.suspend {
        Action::await_change()
    } else {
        Action::requeue(ctx.timing.tick)
    })
}

/// The merged summary of everything a test's runners reported, its thresholds evaluated.
fn final_summary(coordinator: &Coordinator, runners: usize, series: Vec<Point>) -> Summary {
    let start = coordinator.start_time().unwrap_or_else(SystemTime::now);
    let elapsed = SystemTime::now()
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64();
    summarize(
        &coordinator.spec(),
        &coordinator.results(),
        series,
        start,
        elapsed,
        runners,
        None,
    )
}

/// `N iterations, N requests, N errors, N dropped`: how events and conditions quote totals.
fn describe(t: &TotalsStatus) -> String {
    format!(
        "{} iterations, {} requests, {} errors, {} dropped",
        t.iterations, t.requests, t.errors, t.dropped
    )
}

/// The plan has ended: verdict, final status, runners told to stop.
async fn finish(
    lt: &LoadTest,
    ctx: &Ctx,
    tracked: &Arc<Mutex<Tracked>>,
    mut conditions: Conditions,
    generation: i64,
) -> Result<Action, Error> {
    let (coordinator, runners, series) = {
        let t = lock(tracked);
        (t.coordinator.clone(), t.runners, t.series.clone())
    };
    coordinator.stop_all();
    let start = coordinator.start_time().unwrap_or_else(SystemTime::now);
    let summary = final_summary(
        &coordinator,
        runners,
        lock(&series).iter().cloned().collect(),
    );
    let saved = save_summary(lt, ctx, &summary).await?;
    let (thresholds, totals) = status_parts(&summary);
    let phase = if summary.passed {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    let note = format!(
        "{}; thresholds {}",
        describe(&totals),
        if summary.passed { "passed" } else { "FAILED" }
    );
    info!(loadtest = %summary.name, summary = %log_json(&summary), "test finished");
    conditions.set("Complete", true, "PlanEnded", &note);
    conditions.set(
        "Failed",
        !summary.passed,
        if summary.passed {
            "ThresholdsPassed"
        } else {
            "ThresholdsFailed"
        },
        &note,
    );
    let old = lt.status.clone().unwrap_or_default();
    let mut status = next_status(
        &old,
        phase,
        generation,
        Some(start),
        RunnersStatus {
            desired: 0,
            ready: 0,
            summary: "0/0".into(),
        },
        None,
        Some(totals),
        conditions,
    );
    status.thresholds = thresholds;
    status.steps = summary_steps(&summary);
    status.results_config_map = saved.then(|| results_name(lt));
    status.completion_time = Some(status::time(SystemTime::now()));
    write_status(lt, ctx, status).await?;
    ctx.event(
        lt,
        if summary.passed {
            EventType::Normal
        } else {
            EventType::Warning
        },
        if summary.passed {
            "Succeeded"
        } else {
            "ThresholdsFailed"
        },
        note,
    )
    .await;
    let key = test_key(lt);
    lock(&ctx.ended).insert(
        key.clone(),
        (lt.uid().unwrap_or_default(), SystemTime::now()),
    );
    untrack(ctx, &key, true);
    // Runners exit on Stop; the finished branch deletes any still running after the grace.
    Ok(Action::requeue(ctx.timing.end_grace))
}

/// What the summary may take of its ConfigMap: Kubernetes refuses objects over 1 MiB, and
/// the object's metadata needs some of it.
const MAX_SUMMARY_BYTES: usize = 900 * 1024;

/// Keeps the full summary in a ConfigMap owned by the LoadTest (replacing an earlier one, as
/// after a resumed test). A long test's series is coarsened to fit; true when it was saved.
/// A summary that cannot be stored at all (thousands of steps) or that the API server
/// refuses outright must not hold back the verdict: that is an event, not a retry forever.
async fn save_summary(lt: &LoadTest, ctx: &Ctx, summary: &Summary) -> Result<bool, Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &lt.namespace().unwrap_or_default());
    let refused = |why: String| async move {
        ctx.event(
            lt,
            EventType::Warning,
            "ResultsNotSaved",
            format!("the results ConfigMap was not written ({why}); the summary is in the operator's log"),
        )
        .await;
        Ok(false)
    };
    let Some(json) = summary.to_json_within(MAX_SUMMARY_BYTES) else {
        return refused(format!(
            "the summary needs more than {MAX_SUMMARY_BYTES} bytes"
        ))
        .await;
    };
    let cm = results_config_map(lt, String::from_utf8(json).expect("JSON is UTF-8"));
    match api
        .patch(
            &results_name(lt),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if is_permanent(&s) => {
            refused(format!("{} {}", s.code, s.message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The summary for a log line: bounded like the ConfigMap, the series dropped if even that
/// does not fit.
fn log_json(summary: &Summary) -> String {
    let json = summary
        .to_json_within(MAX_SUMMARY_BYTES)
        .unwrap_or_else(|| {
            Summary {
                series: Vec::new(),
                ..summary.clone()
            }
            .to_json()
        });
    String::from_utf8(json).expect("JSON is UTF-8")
}

/// An API refusal that retrying the same request cannot change (bad request, forbidden,
/// too large, invalid), as opposed to conflicts, throttling and server trouble.
fn is_permanent(s: &kube::core::Status) -> bool {
    matches!(s.code, 400 | 403 | 413 | 422)
}

/// Deletion: stop the runners, wait (bounded) for their final snapshots, record the results,
/// remove the pods. The LoadTest goes once this returns.
async fn cleanup(lt: &LoadTest, ctx: &Ctx) -> Result<Action, Error> {
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let key = test_key(lt);
    let old = lt.status.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let observed = pods
        .list(&ListParams::default().labels(&runner_selector(lt)))
        .await?;
    let views: Vec<PodView> = observed.items.iter().map(pod_view).collect();
    let running: BTreeSet<u32> = views
        .iter()
        .filter(|v| v.phase == "Running" && !v.deleting)
        .filter_map(|v| v.index)
        .collect();
    let uid = lt.uid().unwrap_or_default();
    let tracked = match ctx.tracked(&key).filter(|t| lock(t).uid == uid) {
        Some(t) => Some(t),
        // A replica that took over mid-test has not met these runners yet: it coordinates
        // them just long enough to stop them and collect what they measured.
        None if !old.phase.is_some_and(Phase::is_finished) && !running.is_empty() => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            match ensure_token(lt, &secrets).await {
                Ok(token) => {
                    let indices = running.iter().max().map_or(0, |m| m + 1);
                    Some(track(lt, ctx, &key, token, indices))
                }
                Err(e) => {
                    warn!(loadtest = %key, "cannot reach the runners to flush them: {e}");
                    None
                }
            }
        }
        None => None,
    };
    if let Some(tracked) = tracked {
        let (coordinator, runners, series) = {
            let t = lock(&tracked);
            (t.coordinator.clone(), t.runners, t.series.clone())
        };
        let deadline = Instant::now() + ctx.timing.flush_timeout;
        loop {
            // Repeated: a runner that (re)registers meanwhile gets its Stop too.
            coordinator.stop_all();
            let results = coordinator.results();
            let flushed = running
                .iter()
                .all(|i| results.iter().any(|(j, s)| j == i && s.finished));
            if (flushed && coordinator.all_stopped()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        untrack(ctx, &key, false);
        let summary = final_summary(
            &coordinator,
            runners,
            lock(&series).iter().cloned().collect(),
        );
        let (thresholds, totals) = status_parts(&summary);
        let note = format!("stopped by deletion: {}", describe(&totals));
        // The summary goes to the operator's log: the object that would carry it is going.
        info!(loadtest = %key, summary = %log_json(&summary), "final results flushed");
        if !old.phase.is_some_and(Phase::is_finished) {
            let mut status = LoadTestStatus {
                phase: Some(Phase::Stopped),
                totals: Some(totals),
                thresholds,
                steps: summary_steps(&summary),
                current: None,
                ..old
            };
            let mut conditions = Conditions::new(&status, lt.metadata.generation.unwrap_or(0));
            conditions.set("Progressing", false, "Deleted", &note);
            status.conditions = conditions.into_vec();
            write_status(lt, ctx, status).await?;
        }
        ctx.event(lt, EventType::Normal, "Stopped", note).await;
    }
    lock(&ctx.ended).remove(&key);
    ctx.hub.remove(&key, false);
    apply_pods(lt, ctx, &pods, &views, Mode::Stopped, None).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_test(tls: &str) -> LoadTest {
        let yaml = format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 1\n  duration: 1s\n  scenario:\n    connection: {{ tcp: {{ address: \"ledger:7443\", tls: {tls} }} }}\n    steps:\n      - {{ send: {{ text: \"x\" }}, expect: {{ delimiter: \"\\n\" }} }}\n"
        );
        let file = stampede_api::parse(&yaml).unwrap();
        LoadTest::new("t", file.spec)
    }

    #[test]
    fn tls_files_are_refused_in_a_cluster_and_pem_text_is_not() {
        let errs = validate(&load_test("{ ca: ca.pem, cert: c.pem, key: c.key }"));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.scenario.connection.tcp.tls.ca",
                "spec.scenario.connection.tcp.tls.cert",
                "spec.scenario.connection.tcp.tls.key"
            ],
            "{errs:?}"
        );
        assert!(errs[0].message.contains("put the PEM text itself here"));
        let inline =
            "{ ca: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\" }";
        assert!(validate(&load_test(inline)).is_empty());
    }
}
