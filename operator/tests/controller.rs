//! The Kubernetes backend against the in-process fake API server: the real `kube::Client`,
//! `Controller`, finalizer helper and event recorder; runners are in-test gRPC clients that
//! speak the real protocol to the operator's real endpoint on 127.0.0.1, and the test plays
//! the kubelet (it starts a runner for every pod it sees and stops it when the pod goes).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use stampede_api::crd::{LoadTest, Phase};
use stampede_api::proto::coordinator_client::CoordinatorClient;
use stampede_api::proto::{
    self, CoordinatorMessage, RunnerMessage, Snapshot, coordinator_message, runner_message,
};
use stampede_fake_apiserver::FakeApiServer;
use stampede_operator::controller::resources::RunnerDefaults;
use stampede_operator::controller::{self, Ctx, Timing};
use stampede_operator::hub::Hub;
use stampede_operator::leader::{Elector, LeaseConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

/// A runner as the operator sees one: registers, acknowledges assignments with snapshots,
/// reports `finished` when its plan's end arrives (the test says when) or on Stop.
#[derive(Clone, Default)]
struct RunnerLog {
    assignment: Option<proto::Assignment>,
    stopped: bool,
}

struct FakeRunner {
    log: Arc<Mutex<RunnerLog>>,
    task: tokio::task::JoinHandle<()>,
}

/// A cumulative snapshot: `iterations` one-request iterations of step `home`, each 1 ms.
fn snapshot(revision: u64, iterations: u64, finished: bool) -> RunnerMessage {
    let mut latency = stampede_api::stats::new_histogram();
    if iterations > 0 {
        latency.record_n(1_000, iterations).unwrap();
    }
    let latency: tokio_util::bytes::Bytes =
        stampede_api::results::histogram_wire_bytes(&latency).into();
    RunnerMessage {
        msg: Some(runner_message::Msg::Snapshot(Snapshot {
            revision,
            iterations,
            active_connections: 0,
            finished,
            steps: vec![stampede_api::proto::StepSnapshot {
                name: "home".into(),
                outcomes: [("ok".to_string(), iterations)].into(),
                service: latency.clone(),
                latency,
                ..Default::default()
            }],
            ..Snapshot::default()
        })),
    }
}

impl FakeRunner {
    async fn connect(
        url: &str,
        loadtest: &str,
        index: u32,
        token: &str,
    ) -> Result<FakeRunner, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(RunnerMessage {
            msg: Some(runner_message::Msg::Register(proto::Register {
                loadtest: loadtest.into(),
                index,
                token: token.into(),
                session: format!("{index}-{:x}", fastrand::u64(..)),
            })),
        })
        .await
        .unwrap();
        let mut client = CoordinatorClient::connect(url.to_string())
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        let log = Arc::new(Mutex::new(RunnerLog::default()));
        let (l, t) = (log.clone(), tx.clone());
        let task = tokio::spawn(async move {
            while let Ok(Some(CoordinatorMessage { msg: Some(m) })) = inbound.message().await {
                match m {
                    coordinator_message::Msg::Assignment(a) => {
                        let rev = a.revision;
                        l.lock().unwrap().assignment = Some(a);
                        let _ = t.send(snapshot(rev, 10, false)).await;
                    }
                    coordinator_message::Msg::Stop(_) => {
                        l.lock().unwrap().stopped = true;
                        let _ = t.send(snapshot(0, 10, true)).await;
                        return;
                    }
                }
            }
        });
        Ok(FakeRunner { log, task })
    }

    fn assignment(&self) -> Option<proto::Assignment> {
        self.log.lock().unwrap().assignment.clone()
    }
}

struct Harness {
    fake: FakeApiServer,
    client: Client,
    url: String,
    shutdown: CancellationToken,
    /// Runners by pod name: the "kubelet".
    runners: Arc<tokio::sync::Mutex<HashMap<String, (u32, FakeRunner)>>>,
    /// While set, the kubelet starts no new runner (a node slow to start pods).
    hold: std::sync::atomic::AtomicBool,
    /// While set, a runner outlives its deleted pod and stays connected (a partitioned node):
    /// only the controller can take its share away.
    orphans: std::sync::atomic::AtomicBool,
    /// The operator replica now leading.
    operator: std::sync::Mutex<Operator>,
    timing: Timing,
}

/// One operator replica: its controller and its runner endpoint, on a runtime of its own so
/// that stopping it ends everything it runs (connections included), as a process death does.
struct Operator {
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts a leading operator replica against `fake`, its runner endpoint on `listener`.
fn start_operator(
    fake: &FakeApiServer,
    listener: std::net::TcpListener,
    url: &str,
    timing: Timing,
) -> Operator {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (fake, url) = (fake.clone(), url.to_string());
    rt.spawn(async move {
        let hub = Hub::default();
        hub.set_leading(true);
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    stampede_api::proto::coordinator_server::CoordinatorServer::new(hub.clone()),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let defaults = RunnerDefaults {
            image: "stampede:test".into(),
            coordinator_url: url,
        };
        let ctx = Arc::new(Ctx::new(fake.client(), hub, defaults, timing));
        controller::run(ctx, std::future::pending()).await;
    });
    Operator { rt: Some(rt) }
}

impl Harness {
    async fn start(timing: Timing) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let fake = FakeApiServer::new();
        let client = fake.client();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let operator = start_operator(&fake, listener, &url, timing.clone());
        Harness {
            fake,
            client,
            url,
            shutdown: CancellationToken::new(),
            runners: Arc::default(),
            hold: Default::default(),
            orphans: Default::default(),
            operator: std::sync::Mutex::new(operator),
            timing,
        }
    }

    /// The leading replica dies; a new one takes over on the same Service address.
    async fn fail_over(&self) {
        let addr = self.url.trim_start_matches("http://").to_string();
        let old = std::mem::replace(&mut *self.operator.lock().unwrap(), Operator { rt: None });
        drop(old);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let listener = std::net::TcpListener::bind(&addr).unwrap();
        let new = start_operator(&self.fake, listener, &self.url, self.timing.clone());
        *self.operator.lock().unwrap() = new;
    }

    fn lts(&self) -> Api<LoadTest> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn pods_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Live (not terminating) runner pods of a test.
    async fn pods(&self, lt: &str) -> Vec<Pod> {
        self.pods_api()
            .list(&ListParams::default().labels(&format!("stampede.dev/loadtest={lt}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    async fn status(&self, lt: &str) -> Option<stampede_api::crd::LoadTestStatus> {
        self.lts().get_opt(lt).await.unwrap().and_then(|l| l.status)
    }

    /// One kubelet pass: every new pod gets a runner (with the env and token the pod says);
    /// every runner whose pod is gone is killed.
    async fn kubelet(&self) {
        let pods = self
            .pods_api()
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=stampede-operator"))
            .await
            .unwrap()
            .items;
        let mut runners = self.runners.lock().await;
        let alive: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        let orphans = self.orphans.load(std::sync::atomic::Ordering::SeqCst);
        // A runner that exited (after Stop) ends its pod, as `restartPolicy: Never` does.
        let mut exited = Vec::new();
        runners.retain(|name, (_, r)| {
            if r.task.is_finished() {
                exited.push(name.clone());
                return false;
            }
            let keep = orphans || alive.contains(name);
            if !keep {
                r.task.abort();
            }
            keep
        });
        for name in exited.iter().filter(|n| alive.contains(n)) {
            set_pod_phase(&self.pods_api(), name, "Succeeded").await;
        }
        if self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for pod in pods.iter().filter(|p| alive.contains(&p.name_any())) {
            let name = pod.name_any();
            if runners.contains_key(&name) || exited.contains(&name) {
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            if phase
                .as_deref()
                .is_some_and(|p| p != "Running" && p != "Pending")
            {
                continue;
            }
            let env = env_of(pod);
            let token = self.token(&env["STAMPEDE_TOKEN_SECRET"]).await;
            let index: u32 = env["STAMPEDE_RUNNER_INDEX"].parse().unwrap();
            if let Ok(r) =
                FakeRunner::connect(&self.url, &env["STAMPEDE_LOADTEST"], index, &token).await
            {
                set_pod_phase(&self.pods_api(), &name, "Running").await;
                runners.insert(name, (index, r));
            }
        }
    }

    /// Keeps playing the kubelet until `shutdown`.
    fn run_kubelet(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            while !me.shutdown.is_cancelled() {
                me.kubelet().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// The assignments the runners of a test hold now, by index.
    async fn assignments(&self) -> BTreeMap<u32, proto::Assignment> {
        let runners = self.runners.lock().await;
        runners
            .values()
            .filter(|(_, r)| !r.log.lock().unwrap().stopped && !r.task.is_finished())
            .filter_map(|(i, r)| r.assignment().map(|a| (*i, a)))
            .collect()
    }

    /// Waits (bounded) until the LoadTest `name` is in `phase`.
    async fn wait_phase(&self, name: &str, phase: Phase, within: Duration) {
        eventually(&format!("{name} {phase:?}"), within, || async {
            self.status(name)
                .await
                .is_some_and(|s| s.phase == Some(phase))
        })
        .await;
    }

    /// The runner token a Secret holds.
    async fn token(&self, secret: &str) -> String {
        let secret: Secret = Api::namespaced(self.client.clone(), NS)
            .get(secret)
            .await
            .unwrap();
        String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        self.fake.objects("apis/events.k8s.io/v1/events", NS)
    }

    fn event_reasons(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn env_of(pod: &Pod) -> HashMap<String, String> {
    let c = &pod.spec.as_ref().unwrap().containers[0];
    c.env
        .iter()
        .flatten()
        .map(|e| match &e.value_from {
            Some(src) => (
                format!("{}_SECRET", e.name),
                src.secret_key_ref.as_ref().unwrap().name.clone(),
            ),
            None => (e.name.clone(), e.value.clone().unwrap_or_default()),
        })
        .collect()
}

async fn set_pod_phase(pods: &Api<Pod>, name: &str, phase: &str) {
    let _ = pods
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await;
}

async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn loadtest(name: &str, extra: &str) -> LoadTest {
    let yaml = format!(
        r#"
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {{ name: {name}, namespace: {NS} }}
spec:
  connections: 90
  rate: 900
{extra}
  scenario:
    connection: {{ http: {{ url: "http://127.0.0.1:9" }} }}
    steps:
      - {{ name: home, request: {{ path: / }} }}
"#
    );
    serde_norway::from_str(&yaml).unwrap()
}

fn fast() -> Timing {
    Timing {
        start_delay: Duration::from_millis(200),
        release_after: Duration::from_secs(30),
        end_grace: Duration::from_secs(3),
        tick: Duration::from_millis(200),
        flush_timeout: Duration::from_secs(3),
    }
}

/// The live runners' assignments sum exactly to the budget.
fn sums(a: &BTreeMap<u32, proto::Assignment>) -> (u64, f64) {
    (
        a.values().map(|a| a.connections).sum(),
        (a.values().map(|a| a.rate.unwrap_or(0.0)).sum::<f64>() * 1e6).round() / 1e6,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_a_token_and_one_secured_pod_per_runner_then_runs() {
    let h = Arc::new(Harness::start(fast()).await);
    let lt = h
        .lts()
        .create(&PostParams::default(), &loadtest("shop", "  runners: 3\n  duration: 1h\n  runner:\n    image: example/stampede:1\n    nodeSelector: { pool: load }\n    tolerations: [ { key: dedicated, operator: Equal, value: load, effect: NoSchedule } ]\n    resources: { limits: { cpu: '2' } }\n    env: [ { name: RUST_LOG, value: info } ]"))
        .await
        .unwrap();
    eventually("3 pods", Duration::from_secs(10), || async {
        h.pods("shop").await.len() == 3
    })
    .await;

    let secret: Secret = Api::namespaced(h.client.clone(), NS)
        .get("shop-runner-token")
        .await
        .unwrap();
    assert_eq!(secret.owner_references()[0].uid, lt.uid().unwrap());
    assert!(secret.data.unwrap()["token"].0.len() >= 32);

    let pods = h.pods("shop").await;
    let mut indices: Vec<String> = pods
        .iter()
        .map(|p| p.labels()["stampede.dev/runner-index"].clone())
        .collect();
    indices.sort();
    assert_eq!(indices, ["0", "1", "2"]);
    for pod in &pods {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("LoadTest", lt.uid().unwrap().as_str(), Some(true))
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "load");
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("example/stampede:1"));
        assert_eq!(c.args.as_ref().unwrap(), &["agent"]);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.allow_privilege_escalation, sc.read_only_root_filesystem),
            (Some(false), Some(true))
        );
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
            &["ALL"]
        );
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"].0,
            "2"
        );
        let env = env_of(pod);
        assert_eq!(env["STAMPEDE_COORDINATOR"], h.url);
        assert_eq!(env["STAMPEDE_LOADTEST"], "default/shop");
        assert_eq!(
            env["STAMPEDE_RUNNER_INDEX"],
            pod.labels()["stampede.dev/runner-index"]
        );
        assert_eq!(env["STAMPEDE_TOKEN_SECRET"], "shop-runner-token");
        assert_eq!(env["RUST_LOG"], "info");
    }
    // No runner has started yet: Pending, 0 of 3, for generation 1.
    eventually("status Pending 0/3", Duration::from_secs(5), || async {
        h.status("shop").await.is_some_and(|st| {
            st.phase == Some(Phase::Pending)
                && st.observed_generation == Some(1)
                && st.runners.as_ref().map(|r| (r.desired, r.ready)) == Some((3, 0))
        })
    })
    .await;

    // The runners start: the budget is split exactly and the test runs.
    h.run_kubelet();
    eventually(
        "Running with 3/3 runners",
        Duration::from_secs(10),
        || async {
            h.status("shop").await.is_some_and(|s| {
                s.phase == Some(Phase::Running) && s.runners.is_some_and(|r| r.summary == "3/3")
            })
        },
    )
    .await;
    let a = h.assignments().await;
    assert_eq!(a.len(), 3);
    assert_eq!(sums(&a), (90, 900.0));
    let st = h.status("shop").await.unwrap();
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert!(h.event_reasons().contains(&"CreatedRunners".to_string()));

    // Steady state is quiet: the status is rewritten when its figures refresh (every 2 s),
    // not on every reconcile its own write triggers.
    let rv = |lt: &LoadTest| lt.resource_version().unwrap().parse::<u64>().unwrap();
    let before = rv(&h.lts().get("shop").await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lt_now = h.lts().get("shop").await.unwrap();
    println!("resourceVersion moved {} in 3 s", rv(&lt_now) - before);
    assert!(
        rv(&lt_now) - before <= 3,
        "the store moved {} versions in 3 s",
        rv(&lt_now) - before
    );

    // A wrong token is refused.
    let wrong = FakeRunner::connect(&h.url, "default/shop", 0, "not-the-token").await;
    assert_eq!(
        wrong.err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_gets_an_invalid_condition_and_an_event_and_no_pods() {
    let h = Harness::start(fast()).await;
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest(
                "broken",
                "  duration: 1m\n  thresholds: [\"p99(checkout) < 250ms\"]",
            ),
        )
        .await
        .unwrap();
    h.wait_phase("broken", Phase::Invalid, Duration::from_secs(10))
        .await;
    let st = h.status("broken").await.unwrap();
    let invalid = st.conditions.iter().find(|c| c.type_ == "Invalid").unwrap();
    assert_eq!(invalid.status, "True");
    let generation = h.lts().get("broken").await.unwrap().metadata.generation;
    for (type_, status) in [
        ("Ready", "False"),
        ("Progressing", "False"),
        ("Complete", "False"),
    ] {
        let c = st.conditions.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(
            (c.status.as_str(), c.observed_generation),
            (status, generation),
            "{type_}"
        );
    }
    assert!(
        invalid.message.contains("spec.thresholds[0]"),
        "{}",
        invalid.message
    );
    assert!(invalid.message.contains("checkout"), "{}", invalid.message);
    let ev = h
        .events()
        .into_iter()
        .find(|e| e["reason"] == "InvalidSpec")
        .expect("an InvalidSpec event");
    assert_eq!(ev["type"], "Warning");
    assert!(ev["note"].as_str().unwrap().contains("spec.thresholds[0]"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.pods("broken").await.is_empty());
    assert!(
        h.fake.objects("api/v1/secrets", NS).is_empty(),
        "nothing is created for an invalid spec"
    );

    // Fixing it is enough: the next change creates the runner.
    h.lts()
        .patch(
            "broken",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"thresholds": ["p99(home) < 250ms"]}})),
        )
        .await
        .unwrap();
    eventually("a pod once valid", Duration::from_secs(10), || async {
        h.pods("broken").await.len() == 1
    })
    .await;

    // An invalid patch to a running test is reported and not applied: it keeps its runner.
    h.lts()
        .patch(
            "broken",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runners": 0}})),
        )
        .await
        .unwrap();
    eventually(
        "Invalid=True on the running test",
        Duration::from_secs(10),
        || async {
            h.status("broken").await.is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Invalid" && c.status == "True" && c.message.contains("spec.runners")
                })
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = h.status("broken").await.unwrap();
    assert_ne!(st.phase, Some(Phase::Invalid));
    assert_eq!(st.runners.unwrap().desired, 1);
    assert_eq!(h.pods("broken").await.len(), 1);
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_follow_patches_and_a_lost_pod_is_replaced_and_its_budget_resplit() {
    let h = Arc::new(Harness::start(fast()).await);
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest("scale", "  runners: 3\n  duration: 1h"),
        )
        .await
        .unwrap();
    h.run_kubelet();
    let split_among = |n: usize| {
        let h = h.clone();
        async move {
            let a = h.assignments().await;
            a.len() == n && sums(&a) == (90, 900.0) && a.keys().all(|i| (*i as usize) < n)
        }
    };
    eventually("3 runners", Duration::from_secs(10), || split_among(3)).await;

    for (n, (patch_to, wait)) in [(5usize, 10u64), (2, 10)]
        .into_iter()
        .map(|(a, b)| (a, (a, b)))
    {
        h.lts()
            .patch(
                "scale",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"runners": patch_to}})),
            )
            .await
            .unwrap();
        eventually(&format!("{n} pods"), Duration::from_secs(wait), || async {
            h.pods("scale").await.len() == n
        })
        .await;
        eventually(
            &format!("split across {n}"),
            Duration::from_secs(wait),
            || split_among(n),
        )
        .await;
        let generation = h.lts().get("scale").await.unwrap().metadata.generation;
        eventually(
            &format!("status for {n} runners"),
            Duration::from_secs(5),
            || async {
                h.status("scale").await.is_some_and(|st| {
                    st.runners.as_ref().is_some_and(|r| r.desired == n as u32)
                        && st.observed_generation == generation
                })
            },
        )
        .await;
    }

    // A runner pod is deleted: its budget moves to the survivor within two seconds, and
    // the pod comes back (its runner is held back a moment so the interim split is visible).
    // The deleted pod's runner stays connected, as on a partitioned node: the controller,
    // not a closed stream, must move its share.
    h.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    h.orphans.store(true, std::sync::atomic::Ordering::SeqCst);
    let victim = h
        .pods("scale")
        .await
        .into_iter()
        .find(|p| p.labels()["stampede.dev/runner-index"] == "1")
        .unwrap();
    let deleted = Instant::now();
    h.pods_api()
        .delete(&victim.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    let resplit = eventually(
        "the survivor carrying the whole budget",
        Duration::from_secs(2),
        || async {
            let a = h.assignments().await;
            a.len() == 1 && a.contains_key(&0) && sums(&a) == (90, 900.0)
        },
    )
    .await;
    eventually(
        "a replacement pod for index 1",
        Duration::from_secs(5),
        || async {
            h.pods("scale").await.iter().any(|p| {
                p.labels()["stampede.dev/runner-index"] == "1" && p.name_any() != victim.name_any()
            })
        },
    )
    .await;
    h.hold.store(false, std::sync::atomic::Ordering::SeqCst);
    h.orphans.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("split across 2 again", Duration::from_secs(5), || {
        split_among(2)
    })
    .await;
    println!(
        "pod deleted: budget re-split in {} ms, back on 2 runners after {} ms",
        resplit.as_millis(),
        deleted.elapsed().as_millis()
    );

    // A runner that fails is replaced the same way.
    let failing = h
        .pods("scale")
        .await
        .into_iter()
        .find(|p| p.labels()["stampede.dev/runner-index"] == "0")
        .unwrap();
    set_pod_phase(&h.pods_api(), &failing.name_any(), "Failed").await;
    eventually(
        "the failed pod replaced",
        Duration::from_secs(5),
        || async {
            let pods = h.pods("scale").await;
            pods.len() == 2 && pods.iter().all(|p| p.name_any() != failing.name_any())
        },
    )
    .await;
    eventually(
        "split across 2 after the failure",
        Duration::from_secs(5),
        || split_among(2),
    )
    .await;
    assert!(h.event_reasons().contains(&"RunnerLost".to_string()));
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_loadtest_stops_runners_flushes_results_and_removes_pods() {
    let h = Arc::new(Harness::start(fast()).await);
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest("gone", "  runners: 2\n  duration: 1h"),
        )
        .await
        .unwrap();
    h.run_kubelet();
    h.wait_phase("gone", Phase::Running, Duration::from_secs(10))
        .await;
    let lt = h.lts().get("gone").await.unwrap();
    assert!(lt.finalizers().contains(&controller::FINALIZER.to_string()));
    let logs: Vec<_> = h
        .runners
        .lock()
        .await
        .values()
        .map(|(_, r)| r.log.clone())
        .collect();

    h.lts()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the LoadTest gone", Duration::from_secs(10), || async {
        h.lts().get_opt("gone").await.unwrap().is_none()
    })
    .await;
    assert!(
        logs.iter().all(|l| l.lock().unwrap().stopped),
        "every runner got Stop"
    );
    let stopped = h
        .events()
        .into_iter()
        .find(|e| e["reason"] == "Stopped")
        .expect("a Stopped event with the final results");
    // Two runners, each reporting 10 iterations: the flushed totals are the merge of both.
    assert!(
        stopped["note"].as_str().unwrap().contains("20 iterations"),
        "{stopped}"
    );
    assert!(h.pods("gone").await.is_empty());
    assert!(
        h.fake.objects("api/v1/pods", NS).is_empty(),
        "no pod dangles"
    );
    assert!(
        h.fake.objects("api/v1/secrets", NS).is_empty(),
        "no token dangles"
    );
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_removes_runners_and_resume_brings_them_back() {
    let h = Arc::new(Harness::start(fast()).await);
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest("pause", "  runners: 2\n  duration: 1h"),
        )
        .await
        .unwrap();
    h.run_kubelet();
    h.wait_phase("pause", Phase::Running, Duration::from_secs(10))
        .await;
    let suspend = |on: bool| {
        let h = h.clone();
        async move {
            h.lts()
                .patch(
                    "pause",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": on}})),
                )
                .await
                .unwrap();
        }
    };
    suspend(true).await;
    eventually("Stopped, no pods", Duration::from_secs(5), || async {
        h.status("pause")
            .await
            .is_some_and(|s| s.phase == Some(Phase::Stopped))
            && h.pods("pause").await.is_empty()
    })
    .await;
    assert!(h.assignments().await.is_empty(), "no runner keeps running");
    suspend(false).await;
    eventually(
        "Running again on 2 runners",
        Duration::from_secs(10),
        || async {
            h.status("pause")
                .await
                .is_some_and(|s| s.phase == Some(Phase::Running))
                && sums(&h.assignments().await) == (90, 900.0)
        },
    )
    .await;
    assert!(h.event_reasons().contains(&"Suspended".to_string()));
    assert!(h.event_reasons().contains(&"Resumed".to_string()));
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_the_plan_gives_a_verdict_and_the_ttl_removes_pods_but_keeps_results() {
    let h = Arc::new(Harness::start(fast()).await);
    // Fake runners report 10 iterations each: 20 in 1 s passes `rate > 5` and fails `rate > 1000`.
    h.lts()
        .create(&PostParams::default(), &loadtest("pass", "  runners: 2\n  duration: 1s\n  ttlSecondsAfterFinished: 1\n  thresholds: [\"rate > 5\"]"))
        .await
        .unwrap();
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest(
                "fail",
                "  runners: 2\n  duration: 1s\n  thresholds: [\"rate > 1000\"]",
            ),
        )
        .await
        .unwrap();
    h.run_kubelet();
    for (name, phase) in [("pass", Phase::Succeeded), ("fail", Phase::Failed)] {
        h.wait_phase(name, phase, Duration::from_secs(15)).await;
        let st = h.status(name).await.unwrap();
        assert!(st.completion_time.is_some() && st.start_time.is_some());
        assert_eq!(st.thresholds.len(), 1);
        assert_eq!(st.thresholds[0].passed, phase == Phase::Succeeded);
        assert_eq!(st.totals.as_ref().unwrap().iterations, 20);
        // Per-step results for `kubectl describe`, the results' ConfigMap named, and the live
        // figures gone (server-side apply drops what the operator no longer sets).
        assert_eq!(st.steps.len(), 1, "{:?}", st.steps);
        assert_eq!(
            (
                st.steps[0].name.as_str(),
                st.steps[0].requests,
                st.steps[0].errors
            ),
            ("home", 20, 0)
        );
        assert_eq!(st.steps[0].p99, "1.00ms");
        assert_eq!(st.results_config_map, Some(format!("{name}-results")));
        assert!(st.current.is_none(), "{:?}", st.current);
        let complete = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Complete")
            .unwrap();
        assert_eq!(complete.status, "True");
    }
    // TTL: the pods and token of `pass` go after a second; the LoadTest and results stay.
    let secrets = || {
        h.fake
            .objects("api/v1/secrets", NS)
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    eventually(
        "pass's pods and token removed by the TTL",
        Duration::from_secs(5),
        || async { h.pods("pass").await.is_empty() && secrets() == ["fail-runner-token"] },
    )
    .await;
    assert!(
        h.status("pass")
            .await
            .is_some_and(|s| s.phase == Some(Phase::Succeeded))
    );
    // The full merged summary stays in a ConfigMap owned by the LoadTest, past the TTL.
    let cm: k8s_openapi::api::core::v1::ConfigMap = Api::namespaced(h.client.clone(), NS)
        .get("pass-results")
        .await
        .unwrap();
    let summary: Value = serde_json::from_str(&cm.data.unwrap()["summary.json"]).unwrap();
    assert_eq!(summary["schema"], "stampede.dev/summary/v1");
    assert_eq!(summary["totals"]["iterations"], 20);
    assert_eq!(summary["passed"], true);
    assert_eq!(cm.metadata.owner_references.unwrap()[0].name, "pass");
    // Without a TTL the pods stay for their logs, and nothing is recreated, even when the
    // finished test is patched (validly or not).
    for patch in [
        json!({"spec": {"rate": 5}}),
        json!({"spec": {"thresholds": ["p99(nope) < 1s"]}}),
    ] {
        h.lts()
            .patch("fail", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.pods("fail").await.len(), 2);
        assert!(
            h.status("fail")
                .await
                .is_some_and(|s| s.phase == Some(Phase::Failed))
        );
    }
    // A runner that missed the end is told the test is over rather than to retry.
    let token = h.token("fail-runner-token").await;
    let late = FakeRunner::connect(&h.url, "default/fail", 0, &token).await;
    assert_eq!(
        late.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_one_holds_the_lease_and_the_other_takes_over() {
    let fake = FakeApiServer::new();
    let cfg = |id: &str| LeaseConfig {
        name: "stampede-operator".into(),
        namespace: NS.into(),
        identity: id.into(),
        duration: Duration::from_secs(1),
        retry: Duration::from_millis(100),
    };
    let a = Elector::new(fake.client(), cfg("a"));
    let b = Elector::new(fake.client(), cfg("b"));
    // Both try at once, many times: exactly one wins each round.
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    assert_ne!(ra.unwrap(), rb.unwrap(), "exactly one replica leads");
    let (leader, standby) = if a.try_acquire_or_renew().await.unwrap() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    for _ in 0..5 {
        assert!(leader.try_acquire_or_renew().await.unwrap());
        assert!(!standby.try_acquire_or_renew().await.unwrap());
    }
    // The leader stops renewing (crashed): the standby takes over once the lease expires.
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), standby.acquire())
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "not before the lease expired"
    );
    assert!(
        !leader.try_acquire_or_renew().await.unwrap(),
        "the old leader knows it lost"
    );
    // A graceful release hands over without waiting for expiry.
    standby.release().await;
    let t1 = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), leader.acquire())
        .await
        .unwrap();
    assert!(t1.elapsed() < Duration::from_millis(500));
}

/// A port nothing listens on now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/metrics` of a replica, as text.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// The value of an unlabelled counter in a scrape.
fn counter(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the scrape"))
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// One replica of the real `stampede-operator run` wiring (lease, runner port, controller,
/// metrics) against the fake API server; cancel the token to stop it as SIGTERM does.
fn start_replica(
    fake: &FakeApiServer,
    id: &str,
    grpc: u16,
    metrics: u16,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    use stampede_operator::kubernetes::{OperatorConfig, run_with};
    let cfg = OperatorConfig {
        grpc_addr: format!("127.0.0.1:{grpc}").parse().unwrap(),
        metrics_addr: format!("127.0.0.1:{metrics}").parse().unwrap(),
        runner: RunnerDefaults {
            image: "stampede:test".into(),
            coordinator_url: format!("http://127.0.0.1:{grpc}"),
        },
        lease: Some(LeaseConfig {
            name: "stampede-operator".into(),
            namespace: NS.into(),
            identity: id.into(),
            duration: Duration::from_secs(1),
            retry: Duration::from_millis(100),
        }),
        instance: Some(id.into()),
        timing: fast(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (client, stop) = (fake.client(), stop.clone());
        async move {
            run_with(client, cfg, stop).await.unwrap();
        }
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_opens_the_runner_port_and_reconciles_and_a_standby_takes_over() {
    let fake = FakeApiServer::new();
    let client = fake.client();
    let (grpc_a, grpc_b) = (free_port(), free_port());
    let (metrics_a, metrics_b) = (free_port(), free_port());
    let (stop_a, task_a) = start_replica(&fake, "a", grpc_a, metrics_a);
    eventually("replica a leads", Duration::from_secs(5), || {
        port_open(grpc_a)
    })
    .await;
    let (stop_b, task_b) = start_replica(&fake, "b", grpc_b, metrics_b);
    eventually("replica b serves metrics", Duration::from_secs(5), || {
        port_open(metrics_b)
    })
    .await;

    let lts: Api<LoadTest> = Api::namespaced(client.clone(), NS);
    lts.create(
        &PostParams::default(),
        &loadtest("leader", "  runners: 2\n  duration: 1h"),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    eventually(
        "the leader creates 2 pods",
        Duration::from_secs(5),
        || async { pods.list(&ListParams::default()).await.unwrap().items.len() == 2 },
    )
    .await;
    // Well past several lease renewals: the standby never opened its runner port, never
    // reconciled, and the leader has.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !port_open(grpc_b).await,
        "a standby keeps its runner port closed"
    );
    assert_eq!(
        counter(
            &scrape(metrics_b).await,
            "stampede_operator_reconciles_total"
        ),
        0.0
    );
    assert!(
        counter(
            &scrape(metrics_a).await,
            "stampede_operator_reconciles_total"
        ) > 0.0
    );

    // The leader stops (SIGTERM): it releases the lease, and the standby takes over at once.
    stop_a.cancel();
    task_a.await.unwrap();
    let took = eventually("replica b leads", Duration::from_secs(3), || {
        port_open(grpc_b)
    })
    .await;
    assert!(!port_open(grpc_a).await);
    eventually("replica b reconciles", Duration::from_secs(5), || async {
        counter(
            &scrape(metrics_b).await,
            "stampede_operator_reconciles_total",
        ) > 0.0
    })
    .await;
    // It coordinates the running test: the status says which runners it expects.
    eventually(
        "status from the new leader",
        Duration::from_secs(5),
        || async {
            lts.get("leader")
                .await
                .unwrap()
                .status
                .and_then(|s| s.runners)
                .is_some_and(|r| r.desired == 2)
        },
    )
    .await;
    println!(
        "the standby led {} ms after the leader stopped",
        took.as_millis()
    );
    stop_b.cancel();
    task_b.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_pod_the_api_server_refuses_is_reported_and_retried_until_it_fits() {
    let h = Harness::start(fast()).await;
    h.fake.refuse_creates(
        "api/v1/pods",
        Some((
            403,
            "exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10",
        )),
    );
    h.lts()
        .create(&PostParams::default(), &loadtest("quota", "  duration: 1h"))
        .await
        .unwrap();
    eventually(
        "a RunnerPodRefused event",
        Duration::from_secs(10),
        || async {
            h.events().iter().any(|e| {
                e["reason"] == "RunnerPodRefused"
                    && e["type"] == "Warning"
                    && e["note"].as_str().unwrap_or("").contains("exceeded quota")
            })
        },
    )
    .await;
    assert!(h.pods("quota").await.is_empty());
    h.fake.refuse_creates("api/v1/pods", None);
    eventually(
        "the pod once the quota allows it",
        Duration::from_secs(10),
        || async { h.pods("quota").await.len() == 1 },
    )
    .await;
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_rate_reaches_every_runner_within_a_second() {
    let h = Arc::new(Harness::start(fast()).await);
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest("live", "  runners: 3\n  duration: 1h"),
        )
        .await
        .unwrap();
    h.run_kubelet();
    eventually("3 runners at 900/s", Duration::from_secs(10), || async {
        let a = h.assignments().await;
        a.len() == 3 && sums(&a) == (90, 900.0)
    })
    .await;
    for rate in [5000.0, 1234.5] {
        let patched = Instant::now();
        h.lts()
            .patch(
                "live",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"rate": rate}})),
            )
            .await
            .unwrap();
        let took = eventually(
            &format!("every runner paced for {rate}/s"),
            Duration::from_secs(1),
            || async {
                let a = h.assignments().await;
                a.len() == 3 && sums(&a) == (90, rate)
            },
        )
        .await;
        println!(
            "rate {rate}/s reached all 3 runners {} ms after the patch (watch + reconcile + push)",
            took.max(patched.elapsed()).as_millis()
        );
    }
    h.shutdown.cancel();
}

/// A kubelet that runs every runner pod as a real `stampede agent` process with the pod's
/// environment, reports its exit as the pod's phase, and sends SIGTERM when the pod goes.
async fn process_kubelet(h: Arc<Harness>, bin: std::path::PathBuf) {
    let mut children: HashMap<String, tokio::process::Child> = HashMap::new();
    while !h.shutdown.is_cancelled() {
        let pods = h
            .pods_api()
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=stampede-operator"))
            .await
            .unwrap()
            .items;
        let alive: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        for (name, child) in children.iter_mut() {
            if !alive.contains(name)
                && let Some(pid) = child.id()
            {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if let Ok(Some(status)) = child.try_wait() {
                let phase = if status.success() {
                    "Succeeded"
                } else {
                    "Failed"
                };
                set_pod_phase(&h.pods_api(), name, phase).await;
            }
        }
        for pod in &pods {
            let name = pod.name_any();
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            if children.contains_key(&name)
                || !alive.contains(&name)
                || phase.is_some_and(|p| p != "Pending")
            {
                continue;
            }
            let env = env_of(pod);
            let token = h.token(&env["STAMPEDE_TOKEN_SECRET"]).await;
            let mut cmd = tokio::process::Command::new(&bin);
            cmd.args(["agent", "--threads", "1"])
                .envs(
                    env.iter()
                        .filter(|(k, _)| k.starts_with("STAMPEDE_") && !k.ends_with("_SECRET")),
                )
                .env("STAMPEDE_TOKEN", token)
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true);
            children.insert(name.clone(), cmd.spawn().expect("the agent starts"));
            set_pod_phase(&h.pods_api(), &name, "Running").await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A harness whose pods run real `stampede agent` processes against a real target.
struct RealAgents {
    h: Arc<Harness>,
    target: stampede_runner::target::Target,
}

impl RealAgents {
    async fn start() -> RealAgents {
        let bin = tokio::task::spawn_blocking(common::runner_bin)
            .await
            .unwrap();
        let target = stampede_runner::target::Target::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let h = Arc::new(Harness::start(fast()).await);
        tokio::spawn(process_kubelet(h.clone(), bin));
        RealAgents { h, target }
    }

    /// 10 users at 200/s against the target.
    fn loadtest(&self, name: &str, extra: &str) -> LoadTest {
        let mut lt = loadtest(name, extra);
        lt.spec.connections = 10;
        lt.spec.rate = Some(200.0);
        lt.spec.scenario.connection.http.as_mut().unwrap().url =
            format!("http://{}", self.target.addr);
        lt
    }

    fn served(&self) -> u64 {
        self.target.stats.requests()
    }

    async fn wait_running_with_traffic(&self, name: &str, served_before: u64) {
        eventually(
            &format!("{name} Running with traffic"),
            Duration::from_secs(30),
            || async {
                self.h
                    .status(name)
                    .await
                    .is_some_and(|s| s.phase == Some(Phase::Running))
                    && self.served() > served_before + 200
            },
        )
        .await;
    }

    /// Deletes `name`, then checks that its Stopped event carries exactly the requests the
    /// target served since `served_before`: nothing measured was lost.
    async fn delete_and_check_flushed(&self, name: &str, served_before: u64, when: &str) {
        let h = &self.h;
        h.lts()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        eventually(&format!("{name} gone"), Duration::from_secs(30), || async {
            h.lts().get_opt(name).await.unwrap().is_none()
        })
        .await;
        let note = h
            .events()
            .into_iter()
            .find(|e| e["reason"] == "Stopped" && e["regarding"]["name"] == name)
            .expect("a Stopped event")["note"]
            .as_str()
            .unwrap()
            .to_string();
        let served = self.served() - served_before;
        println!("deleted {when}: {note}; the target served {served}");
        assert!(
            note.contains(&format!(" {served} requests")),
            "{note} vs {served} served"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agents_in_the_pods_run_the_test_to_its_verdict_and_deletion_loses_nothing() {
    let r = RealAgents::start().await;
    let h = &r.h;

    // To the end: 200/s for 3 s across two agents, exactly 600 iterations, verdict passed.
    let thresholds = "  thresholds: [\"rate > 190\", \"errors < 1%\"]";
    let lt = r.loadtest(
        "real",
        &format!("  runners: 2\n  duration: 3s\n{thresholds}"),
    );
    h.lts().create(&PostParams::default(), &lt).await.unwrap();
    h.wait_phase("real", Phase::Succeeded, Duration::from_secs(60))
        .await;
    let st = h.status("real").await.unwrap();
    let totals = st.totals.unwrap();
    println!("to the end: {totals:?}; the target served {}", r.served());
    assert_eq!(totals.iterations, 600);
    assert_eq!(totals.requests, r.served());
    assert!(
        st.thresholds.iter().all(|t| t.passed),
        "{:?}",
        st.thresholds
    );

    // Deleted mid-run: the agents flush on Stop, so the totals match what the target served.
    let served_before = r.served();
    let lt = r.loadtest("cut", "  runners: 2\n  duration: 1h");
    h.lts().create(&PostParams::default(), &lt).await.unwrap();
    r.wait_running_with_traffic("cut", served_before).await;
    r.delete_and_check_flushed("cut", served_before, "mid-run")
        .await;
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_a_running_test_over_and_nothing_measured_is_lost() {
    let r = RealAgents::start().await;
    let h = &r.h;
    let lt = r.loadtest(
        "takeover",
        "  runners: 2\n  duration: 6s\n  thresholds: [\"rate > 190\"]",
    );
    h.lts().create(&PostParams::default(), &lt).await.unwrap();
    r.wait_running_with_traffic("takeover", 0).await;
    let run_id = h.status("takeover").await.unwrap().run_id;
    assert!(run_id.is_some(), "a running test shows its run id");
    // The leader dies mid-test; the runners keep running and reconnect to the new leader,
    // which picks the test up from its status and Secret and gives the verdict.
    h.fail_over().await;
    h.wait_phase("takeover", Phase::Succeeded, Duration::from_secs(60))
        .await;
    let st = h.status("takeover").await.unwrap();
    assert_eq!(st.run_id, run_id, "the new leader keeps the run's id");
    let totals = st.totals.unwrap();
    println!(
        "after a takeover: {totals:?}; the target served {}",
        r.served()
    );
    assert_eq!(totals.iterations, 1200);
    assert_eq!(totals.requests, r.served());
    assert_eq!(h.pods("takeover").await.len(), 2, "no runner was replaced");

    // Deleted right after a takeover: the new leader has not met the runners yet, adopts
    // them long enough to stop them, and flushes what they measured.
    let served_before = r.served();
    let lt = r.loadtest("adopted", "  runners: 2\n  duration: 1h");
    h.lts().create(&PostParams::default(), &lt).await.unwrap();
    r.wait_running_with_traffic("adopted", served_before).await;
    h.fail_over().await;
    r.delete_and_check_flushed("adopted", served_before, "after a takeover")
        .await;
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_test_writes_its_status_by_server_side_apply_at_most_every_five_seconds() {
    let r = RealAgents::start().await;
    let h = &r.h;
    let lt = r.loadtest("cadence", "  runners: 2\n  duration: 16s");
    h.lts().create(&PostParams::default(), &lt).await.unwrap();
    h.wait_phase("cadence", Phase::Succeeded, Duration::from_secs(90))
        .await;
    let writes = h
        .fake
        .status_writes("apis/stampede.dev/v1alpha1/loadtests", "cadence");
    for w in &writes {
        assert_eq!(w.method, "PATCH", "{w:?}");
        assert!(
            w.content_type.starts_with("application/apply-patch"),
            "every status write is a server-side apply: {w:?}"
        );
    }
    let status = |i: usize| &writes[i].body["status"];
    // The steady part: from the first write with every runner running to the one that ends it.
    let from = (0..writes.len())
        .find(|&i| {
            status(i)["phase"] == "Running"
                && status(i)["runners"]["ready"] == 2
                && status(i)["runners"]["desired"] == 2
        })
        .expect("a write shows both runners running");
    let to = (from..writes.len())
        .find(|&i| status(i)["phase"] != "Running")
        .expect("a write ends the run");
    let running = writes[to].at - writes[from].at;
    let during = to - from - 1;
    println!(
        "{} status writes in all; {during} while running with both runners for {:.1} s",
        writes.len(),
        running.as_secs_f64()
    );
    // Live figures refresh every 5 s: one write per refresh, none in between. A write that
    // also carries a runner or condition change may come sooner.
    let same_state = |a: &Value, b: &Value| {
        ["phase", "runners", "conditions"]
            .iter()
            .all(|k| a[*k] == b[*k])
    };
    let mut figures_only = 0;
    for pair in writes[from..to].windows(2) {
        let (a, b) = (&pair[0].body["status"], &pair[1].body["status"]);
        if same_state(a, b) {
            figures_only += 1;
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(4500),
                "two status writes {gap:?} apart while only figures changed"
            );
        }
    }
    assert!(figures_only >= 1, "16 s of running refreshed the figures");
    h.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_pod_stuck_on_a_missing_secret_is_reported_as_an_event() {
    let h = Arc::new(Harness::start(fast()).await);
    h.lts()
        .create(
            &PostParams::default(),
            &loadtest("stuck", "  runners: 1\n  duration: 1h"),
        )
        .await
        .unwrap();
    eventually("a pod", Duration::from_secs(10), || async {
        h.pods("stuck").await.len() == 1
    })
    .await;
    let name = h.pods("stuck").await[0].name_any();
    // Play the kubelet: the container cannot be created, as when a `caFrom.secretKeyRef`
    // names a Secret that does not exist.
    let _ = Api::<Pod>::namespaced(h.client.clone(), NS)
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Pending", "containerStatuses": [{
                "name": "runner", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                                      "message": "secret \"ledger-tls\" not found"}}
            }]}})),
        )
        .await
        .unwrap();
    eventually(
        "a RunnerNotStarting event",
        Duration::from_secs(10),
        || async {
            h.events().iter().any(|e| {
                e["reason"] == "RunnerNotStarting"
                    && e["note"].as_str().is_some_and(|n| {
                        n.contains(&name) && n.contains("secret \"ledger-tls\" not found")
                    })
            })
        },
    )
    .await;
    h.shutdown.cancel();
}
