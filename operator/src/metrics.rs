//! The operator's `/metrics`: every tracked test's merged results in the families DESIGN.md
//! names, and the operator's own health.
//!
//! Test series are computed at scrape time from the coordinator's merge of the runners'
//! cumulative snapshots, so a counter is exactly what the runners counted, never a sum of
//! increments that a lost snapshot could skew. Labels are bounded: `namespace`, `loadtest`,
//! `step`, `outcome`/`kind` (a fixed set), `quantile`, `state`; never URLs, pods or error text.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TEXT_FORMAT, TextEncoder};
use stampede_api::plan::Plan;
use stampede_api::stats::Outcome;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::coordinator::Coordinator;

/// How long a finished test's series stay, so the last scrape after its end sees final values.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

/// Upper bounds of `stampede_request_duration_seconds`, in seconds: geometric with ratio
/// 1.05 from 100 µs to 60 s (274 buckets). `histogram_quantile` interpolates linearly inside
/// a bucket, so its answer and the exact value share a bucket and differ by at most the
/// ratio: within 5% of the exact HDR percentile anywhere in 1 ms … 10 s (and below, down to
/// loopback latencies). Prometheus' default buckets (×2–2.5 apart) err by up to 150%.
pub fn duration_buckets() -> Vec<f64> {
    const LOW: f64 = 100e-6;
    const HIGH: f64 = 60.0;
    const RATIO: f64 = 1.05;
    let mut bounds = Vec::new();
    let mut b = LOW;
    while b < HIGH * RATIO {
        // Rounded to 4 significant digits so `le` labels are short and stable.
        let digits = 3 - b.log10().floor() as i32;
        let scale = 10f64.powi(digits);
        bounds.push((b * scale).round() / scale);
        b *= RATIO;
    }
    bounds
}

/// The quantiles exported exactly, from the merged HDR histograms.
const QUANTILES: [(f64, &str); 5] = [
    (0.5, "0.5"),
    (0.9, "0.9"),
    (0.95, "0.95"),
    (0.99, "0.99"),
    (0.999, "0.999"),
];

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, whatever their outcome.
    pub reconciles: IntCounter,
    /// Reconciles that failed, by error kind.
    pub reconcile_errors: IntCounterVec,
    tests: Arc<Tests>,
}

impl Metrics {
    pub fn new(grace: Duration) -> Arc<Metrics> {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "stampede_operator_reconciles_total",
            "LoadTest reconciles run by this operator.",
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "stampede_operator_reconcile_errors_total",
                "LoadTest reconciles that failed, by error kind.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let tests = Arc::new(Tests {
            grace,
            buckets: duration_buckets(),
            entries: Mutex::new(BTreeMap::new()),
            descs: Tests::descs(),
        });
        for c in [
            Box::new(reconciles.clone()) as Box<dyn Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(TestsHandle(tests.clone())),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Arc::new(Metrics {
            registry,
            reconciles,
            reconcile_errors,
            tests,
        })
    }

    /// Starts exporting a test's merged results (again, if it was ending).
    pub fn track(&self, namespace: &str, name: &str, coordinator: Coordinator) {
        self.tests.lock().insert(
            key(namespace, name),
            Entry {
                namespace: namespace.to_string(),
                name: name.to_string(),
                coordinator,
                ended: None,
            },
        );
    }

    /// The test `namespace/name` is over (finished or deleted): its series stay for the grace
    /// period, so the next scrapes see its final figures, then disappear.
    pub fn ended(&self, key: &str) {
        if let Some(e) = self.tests.lock().get_mut(key) {
            e.ended.get_or_insert_with(Instant::now);
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        out
    }
}

/// Serves `GET /metrics` (and `GET /healthz`) on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, ctype, body) = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/metrics") => {
                            (StatusCode::OK, TEXT_FORMAT, metrics.render())
                        }
                        (&Method::GET, "/healthz") => {
                            (StatusCode::OK, "text/plain", b"ok\n".to_vec())
                        }
                        _ => (
                            StatusCode::NOT_FOUND,
                            "text/plain",
                            b"try /metrics\n".to_vec(),
                        ),
                    };
                    Response::builder()
                        .status(status)
                        .header("content-type", ctype)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

struct Entry {
    namespace: String,
    name: String,
    coordinator: Coordinator,
    ended: Option<Instant>,
}

struct Tests {
    grace: Duration,
    buckets: Vec<f64>,
    entries: Mutex<BTreeMap<String, Entry>>,
    descs: Vec<Desc>,
}

/// The registry owns its collectors; the operator keeps the `Arc` to add and end tests.
struct TestsHandle(Arc<Tests>);

impl Collector for TestsHandle {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

/// One family under construction.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    metrics: Vec<proto::Metric>,
}

const FAMILIES: [(&str, &str, MetricType, &[&str]); 14] = [
    (
        "stampede_requests_total",
        "Requests sent, by step and outcome (ok or the error kind); a server_error also by the server's own code (an HTTP status, a Redis error prefix), empty otherwise.",
        MetricType::COUNTER,
        &["step", "outcome", "code"],
    ),
    (
        "stampede_request_duration_seconds",
        "Request latency from the intended start (no coordinated omission), by step.",
        MetricType::HISTOGRAM,
        &["step"],
    ),
    (
        "stampede_request_duration_quantile_seconds",
        "Exact latency percentiles since the test started, from the merged HDR histograms.",
        MetricType::GAUGE,
        &["step", "quantile"],
    ),
    (
        "stampede_bytes_sent_total",
        "Bytes written to the target, by step.",
        MetricType::COUNTER,
        &["step"],
    ),
    (
        "stampede_bytes_received_total",
        "Bytes read from the target, by step.",
        MetricType::COUNTER,
        &["step"],
    ),
    (
        "stampede_checks_total",
        "Checks evaluated, by step and result (pass or fail).",
        MetricType::COUNTER,
        &["step", "result"],
    ),
    (
        "stampede_iterations_total",
        "Scenario iterations completed.",
        MetricType::COUNTER,
        &[],
    ),
    (
        "stampede_iterations_dropped_total",
        "Iterations the open model scheduled but could not start (every user busy).",
        MetricType::COUNTER,
        &[],
    ),
    (
        "stampede_connection_errors_total",
        "Connection attempts that failed, by kind.",
        MetricType::COUNTER,
        &["kind"],
    ),
    (
        "stampede_connections_active",
        "Connections (users) open now, across runners.",
        MetricType::GAUGE,
        &[],
    ),
    (
        "stampede_connections_target",
        "Connections the plan asks for now.",
        MetricType::GAUGE,
        &[],
    ),
    (
        "stampede_rate_target",
        "Iterations per second the plan asks for now (open model).",
        MetricType::GAUGE,
        &[],
    ),
    (
        "stampede_runners",
        "Runners by state: desired (spec.runners) and ready (connected to the coordinator).",
        MetricType::GAUGE,
        &["state"],
    ),
    (
        "stampede_operator_snapshot_age_seconds",
        "Time since the quietest live runner of a test last reported: the lag of its figures.",
        MetricType::GAUGE,
        &[],
    ),
];

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

impl Tests {
    fn descs() -> Vec<Desc> {
        FAMILIES
            .iter()
            .map(|(name, help, _, labels)| {
                let mut vars = vec!["namespace".to_string(), "loadtest".to_string()];
                vars.extend(labels.iter().map(|l| l.to_string()));
                Desc::new(name.to_string(), help.to_string(), vars, Default::default())
                    .expect("valid metric description")
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let tests: Vec<(String, String, Coordinator)> = {
            let mut entries = self.lock();
            let grace = self.grace;
            entries.retain(|_, e| e.ended.is_none_or(|t| t.elapsed() < grace));
            entries
                .values()
                .map(|e| (e.namespace.clone(), e.name.clone(), e.coordinator.clone()))
                .collect()
        };
        let mut families: Vec<Family> = FAMILIES
            .iter()
            .map(|(name, help, kind, _)| Family {
                name,
                help,
                kind: *kind,
                metrics: Vec::new(),
            })
            .collect();
        for (namespace, name, coordinator) in &tests {
            self.collect_test(&mut families, namespace, name, coordinator);
        }
        families
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(|f| {
                let mut mf = MetricFamily::default();
                mf.set_name(f.name.to_string());
                mf.set_help(f.help.to_string());
                mf.set_field_type(f.kind);
                mf.set_metric(f.metrics);
                mf
            })
            .collect()
    }

    fn collect_test(
        &self,
        families: &mut [Family],
        namespace: &str,
        name: &str,
        coordinator: &Coordinator,
    ) {
        let base = [label("namespace", namespace), label("loadtest", name)];
        let mut push = |family: &str, extra: &[(&str, &str)], metric: proto::Metric| {
            let mut metric = metric;
            let mut labels = base.to_vec();
            labels.extend(extra.iter().map(|(n, v)| label(n, v)));
            metric.set_label(labels);
            if let Some(f) = families.iter_mut().find(|f| f.name == family) {
                f.metrics.push(metric);
            }
        };
        let counter = |v: u64| {
            let mut c = proto::Counter::default();
            c.set_value(v as f64);
            let mut m = proto::Metric::default();
            m.set_counter(c);
            m
        };
        let gauge = |v: f64| {
            let mut g = proto::Gauge::default();
            g.set_value(v);
            proto::Metric::from_gauge(g)
        };

        let merged = coordinator.merged();
        let total = &merged.total;
        for (step, stats) in merged.names.iter().zip(&total.steps) {
            for o in Outcome::ALL {
                let n = stats.outcomes[o as usize];
                // `ok` always exists so a step shows up before its first answer; error kinds
                // appear once they happen.
                if o == Outcome::ServerError {
                    // One series per server code, the code in its own bounded label.
                    let mut coded = 0;
                    for (code, c) in stats.codes.iter() {
                        coded += c;
                        push(
                            "stampede_requests_total",
                            &[("step", step), ("outcome", o.as_str()), ("code", code)],
                            counter(c),
                        );
                    }
                    if n > coded {
                        push(
                            "stampede_requests_total",
                            &[("step", step), ("outcome", o.as_str()), ("code", "")],
                            counter(n - coded),
                        );
                    }
                } else if n > 0 || o == Outcome::Ok {
                    push(
                        "stampede_requests_total",
                        &[("step", step), ("outcome", o.as_str()), ("code", "")],
                        counter(n),
                    );
                }
            }
            push(
                "stampede_request_duration_seconds",
                &[("step", step)],
                histogram_metric(&stats.latency, &self.buckets),
            );
            if !stats.latency.is_empty() {
                for (q, text) in QUANTILES {
                    let v = stats.latency.value_at_quantile(q) as f64 / 1e6;
                    push(
                        "stampede_request_duration_quantile_seconds",
                        &[("step", step), ("quantile", text)],
                        gauge(v),
                    );
                }
            }
            push(
                "stampede_bytes_sent_total",
                &[("step", step)],
                counter(stats.bytes_sent),
            );
            push(
                "stampede_bytes_received_total",
                &[("step", step)],
                counter(stats.bytes_received),
            );
            if stats.checks_passed + stats.checks_failed > 0 {
                push(
                    "stampede_checks_total",
                    &[("step", step), ("result", "pass")],
                    counter(stats.checks_passed),
                );
                push(
                    "stampede_checks_total",
                    &[("step", step), ("result", "fail")],
                    counter(stats.checks_failed),
                );
            }
        }
        push("stampede_iterations_total", &[], counter(total.iterations));
        push(
            "stampede_iterations_dropped_total",
            &[],
            counter(total.dropped),
        );
        for o in Outcome::ALL {
            let n = total.connect_errors[o as usize];
            if n > 0 {
                push(
                    "stampede_connection_errors_total",
                    &[("kind", o.as_str())],
                    counter(n),
                );
            }
        }
        push(
            "stampede_connections_active",
            &[],
            gauge(total.active_connections as f64),
        );

        // What the plan asks for now: nothing before the start or after the end.
        let spec = coordinator.spec();
        let budget = &spec.budget;
        let elapsed = coordinator
            .start_time()
            .and_then(|s| SystemTime::now().duration_since(s).ok())
            .map(|d| d.as_secs_f64())
            .filter(|t| *t < budget.total());
        let plan = Plan::new(&budget.share(0, 1));
        push(
            "stampede_connections_target",
            &[],
            gauge(elapsed.map_or(0.0, |t| plan.connections_at(t) as f64)),
        );
        if budget.rate.is_some() {
            push(
                "stampede_rate_target",
                &[],
                gauge(elapsed.map_or(0.0, |t| plan.rate_at(t))),
            );
        }
        let ready = coordinator.live().len();
        push(
            "stampede_runners",
            &[("state", "desired")],
            gauge(coordinator.expected() as f64),
        );
        push(
            "stampede_runners",
            &[("state", "ready")],
            gauge(ready as f64),
        );
        if let Some(age) = coordinator.snapshot_age() {
            push(
                "stampede_operator_snapshot_age_seconds",
                &[],
                gauge(age.as_secs_f64()),
            );
        }
    }
}

/// A Prometheus histogram from an HDR histogram in microseconds: each bucket counts the
/// values at or below its bound (an HDR value stands for its whole equivalence range; its
/// highest equivalent value is compared, so a value is never counted below where it is).
pub fn histogram_metric(h: &Histogram<u64>, bounds: &[f64]) -> proto::Metric {
    let mut buckets = Vec::with_capacity(bounds.len());
    let mut recorded = h.iter_recorded().peekable();
    let mut cumulative = 0u64;
    for &le in bounds {
        let le_us = le * 1e6;
        while let Some(v) = recorded.peek() {
            if v.value_iterated_to() as f64 > le_us {
                break;
            }
            cumulative += v.count_at_value();
            recorded.next();
        }
        let mut b = proto::Bucket::default();
        b.set_upper_bound(le);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    let mut hist = proto::Histogram::default();
    hist.set_sample_count(h.len());
    hist.set_sample_sum(h.mean() * h.len() as f64 / 1e6);
    hist.set_bucket(buckets);
    let mut m = proto::Metric::default();
    m.set_histogram(hist);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_api::stats::new_histogram;

    /// Prometheus' `histogram_quantile` (promql/quantile.go, `bucketQuantile`): linear
    /// interpolation inside the bucket that holds the rank.
    fn histogram_quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> f64 {
        let rank = q * count as f64;
        let i = buckets
            .iter()
            .position(|(_, c)| *c as f64 >= rank)
            .unwrap_or(buckets.len() - 1);
        let (start, below) = if i == 0 {
            (0.0, 0)
        } else {
            (buckets[i - 1].0, buckets[i - 1].1)
        };
        let (end, upto) = buckets[i];
        start + (end - start) * (rank - below as f64) / (upto - below) as f64
    }

    fn exported(h: &Histogram<u64>) -> (Vec<(f64, u64)>, u64) {
        let m = histogram_metric(h, &duration_buckets());
        let hist = m.get_histogram();
        let b = hist
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        (b, hist.get_sample_count())
    }

    #[test]
    fn buckets_are_geometric_from_100us_to_60s() {
        let b = duration_buckets();
        assert_eq!(b[0], 1e-4);
        assert!(*b.last().unwrap() >= 60.0 && b[b.len() - 2] < 60.0);
        for w in b.windows(2) {
            let r = w[1] / w[0];
            assert!((1.045..=1.055).contains(&r), "{} → {}", w[0], w[1]);
        }
        assert!(b.len() < 300, "{} buckets", b.len());
    }

    #[test]
    fn histogram_quantile_stays_within_5_percent_of_the_exact_value_from_1ms_to_10s() {
        // Log-uniform, normal-ish and bimodal latencies spanning 1 ms … 10 s, in µs.
        let mut rng = fastrand::Rng::with_seed(7);
        type Shape = Box<dyn Fn(&mut fastrand::Rng) -> u64>;
        let shapes: [(&str, Shape); 3] = [
            (
                "log-uniform 1ms..10s",
                Box::new(|r| (1e3 * 10f64.powf(4.0 * r.f64())) as u64),
            ),
            (
                "narrow around 40ms",
                Box::new(|r| (40e3 * (1.0 + 0.1 * (r.f64() + r.f64() - 1.0))) as u64),
            ),
            (
                "bimodal 2ms / 3s",
                Box::new(|r| {
                    if r.f64() < 0.9 {
                        (2e3 * (1.0 + 0.2 * r.f64())) as u64
                    } else {
                        (3e6 * (1.0 + 0.5 * r.f64())) as u64
                    }
                }),
            ),
        ];
        for (name, sample) in &shapes {
            let mut h = new_histogram();
            for _ in 0..200_000 {
                h.record(sample(&mut rng)).unwrap();
            }
            let (buckets, count) = exported(&h);
            assert_eq!(count, 200_000);
            assert_eq!(buckets.last().unwrap().1, 200_000, "{name}: all under 60 s");
            for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
                let exact = h.value_at_quantile(q) as f64 / 1e6;
                let approx = histogram_quantile(q, &buckets, count);
                let err = (approx - exact).abs() / exact;
                assert!(
                    err <= 0.05,
                    "{name} p{q}: histogram_quantile {approx:.6}s vs exact {exact:.6}s ({:.1}%)",
                    err * 100.0
                );
            }
        }
    }

    #[test]
    fn an_ended_tests_series_stay_for_the_grace_period_then_go() {
        let spec = crate::coordinator::TestSpec {
            name: "t".into(),
            run_id: String::new(),
            yaml: String::new(),
            budget: stampede_api::Assignment {
                connections: 1,
                rate: Some(5.0),
                stages: Vec::new(),
                duration: 1.0,
                lanes: Default::default(),
                whole: None,
            },
            max_connections: None,
        };
        let c = Coordinator::new(
            spec,
            "token".into(),
            crate::coordinator::Start::At(std::time::SystemTime::now()),
            1,
        );
        let m = Metrics::new(Duration::from_millis(300));
        m.track("ns", "shop", c);
        let text = |m: &Metrics| String::from_utf8(m.render()).unwrap();
        assert!(text(&m).contains(r#"stampede_rate_target{namespace="ns",loadtest="shop"}"#));
        m.ended("ns/shop");
        assert!(
            text(&m).contains(r#"loadtest="shop""#),
            "kept during the grace"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert!(!text(&m).contains(r#"loadtest="shop""#), "removed after it");
        // The operator's own families stay.
        assert!(text(&m).contains("stampede_operator_reconciles_total"));
    }

    #[test]
    fn bucket_counts_are_cumulative_and_sum_is_in_seconds() {
        let mut h = new_histogram();
        for v in [150u64, 150, 2_000, 2_000_000] {
            h.record(v).unwrap();
        }
        let (buckets, count) = exported(&h);
        assert_eq!(count, 4);
        let at = |s: f64| {
            buckets
                .iter()
                .find(|(le, _)| *le >= s)
                .map(|(_, c)| *c)
                .unwrap()
        };
        assert_eq!(at(1e-4), 0);
        assert_eq!(at(2e-4), 2);
        assert_eq!(at(2.2e-3), 3);
        assert_eq!(at(2.2), 4);
        let m = histogram_metric(&h, &duration_buckets());
        let sum = m.get_histogram().get_sample_sum();
        assert!((sum - 2.004_3).abs() < 0.01, "{sum}");
    }
}
