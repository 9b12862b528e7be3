//! The collector: merges workers' per-second deltas into a time series and cumulative
//! totals, and builds the summary (`stampede run --out`) with serialised HDR histograms so
//! other tools can merge runs exactly. Off the hot path: runs once a second.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::stats::{Delta, Outcome, StepStats, new_histogram};

/// A worker's delta for the interval that ends at second `second` after the engine started
/// (`last`: its final, partial interval).
#[derive(Debug)]
pub struct Report {
    pub worker: usize,
    pub second: u64,
    pub delta: Delta,
    pub last: bool,
}

pub const SUMMARY_SCHEMA: &str = "stampede.dev/summary/v1";

/// One second of the run, all workers merged.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Seconds since the engine started (the end of the interval).
    pub t: u64,
    pub iterations: u64,
    pub requests: u64,
    pub errors: u64,
    pub dropped: u64,
    pub active_connections: u64,
    pub target_connections: u64,
    /// Iterations/s the plan asked for (open model only).
    pub target_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Failed requests and failed connects by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Point {
    /// Takes in the interval that follows this one (which covers `span` seconds), making one
    /// point of the two: counts add up, gauges are the later ones, the target rate is
    /// averaged over the time, and each percentile is the higher of the two (the exact merged
    /// value needs histograms a point does not keep; the higher one never hides a spike).
    pub fn absorb(&mut self, later: &Point, span: u64) {
        let (a, b) = (span.max(1) as f64, later.interval_from(self.t) as f64);
        self.target_rate = match (self.target_rate, later.target_rate) {
            (Some(x), Some(y)) => Some((x * a + y * b) / (a + b)),
            (x, y) => x.or(y),
        };
        self.t = later.t;
        self.iterations += later.iterations;
        self.requests += later.requests;
        self.errors += later.errors;
        self.dropped += later.dropped;
        self.active_connections = later.active_connections;
        self.target_connections = later.target_connections;
        let max = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        self.p50_ms = max(self.p50_ms, later.p50_ms);
        self.p95_ms = max(self.p95_ms, later.p95_ms);
        self.p99_ms = max(self.p99_ms, later.p99_ms);
        for (k, n) in &later.errors_by_kind {
            *self.errors_by_kind.entry(k.clone()).or_default() += n;
        }
        self.bytes_sent += later.bytes_sent;
        self.bytes_received += later.bytes_received;
    }

    /// Seconds this point covers, given the `t` of the point before it (0 for the first).
    pub fn interval_from(&self, previous_t: u64) -> u64 {
        self.t.saturating_sub(previous_t).max(1)
    }
}

pub struct Collector {
    workers: usize,
    open: bool,
    pub totals: Delta,
    pending: BTreeMap<u64, Delta>,
    /// Highest second each worker has reported, and whether it is done.
    progress: Vec<(u64, bool)>,
    pub series: Vec<Point>,
}

impl Collector {
    pub fn new(steps: usize, workers: usize, open: bool) -> Collector {
        Collector {
            workers,
            open,
            totals: Delta::new(steps),
            pending: BTreeMap::new(),
            progress: vec![(0, false); workers],
            series: Vec::new(),
        }
    }

    /// Takes one report; returns the seconds that became complete.
    pub fn add(&mut self, r: Report) -> Vec<Point> {
        self.totals.add(&r.delta);
        let slot = self
            .pending
            .entry(r.second)
            .or_insert_with(|| Delta::new(r.delta.steps.len()));
        slot.add(&r.delta);
        if let Some(p) = self.progress.get_mut(r.worker) {
            p.0 = p.0.max(r.second);
            p.1 |= r.last;
        }
        // A second is complete once every worker has reported it or moved past it, or is done.
        let complete_to = self
            .progress
            .iter()
            .map(|&(s, done)| if done { u64::MAX } else { s })
            .min()
            .unwrap_or(0);
        self.emit(complete_to)
    }

    /// Flushes every second still pending (all workers have finished).
    pub fn finish(&mut self) -> Vec<Point> {
        self.emit(u64::MAX)
    }

    fn emit(&mut self, upto: u64) -> Vec<Point> {
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (t, d) = entry.remove_entry();
            let p = point(t, &d, self.open);
            self.series.push(p.clone());
            out.push(p);
        }
        out
    }

    pub fn workers(&self) -> usize {
        self.workers
    }
}

fn merged_latency(steps: &[StepStats]) -> Histogram<u64> {
    let mut h = new_histogram();
    for s in steps {
        h.add(&s.latency).expect("same bounds");
    }
    h
}

fn pct_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q / 100.0) as f64 / 1000.0)
}

/// Failed requests and failed connects by kind (`Outcome` names), kinds with none left out.
pub fn errors_by_kind(d: &Delta) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for o in Outcome::ALL.into_iter().skip(1) {
        let n: u64 = d.steps.iter().map(|s| s.outcomes[o as usize]).sum::<u64>()
            + d.connect_errors[o as usize];
        if n > 0 {
            m.insert(o.as_str().to_string(), n);
        }
    }
    m
}

fn point(t: u64, d: &Delta, open: bool) -> Point {
    let h = merged_latency(&d.steps);
    Point {
        t,
        iterations: d.iterations,
        requests: d.requests(),
        errors: d.errors(),
        dropped: d.dropped,
        active_connections: d.active_connections,
        target_connections: d.target_connections,
        target_rate: open.then_some(d.target_rate),
        p50_ms: pct_ms(&h, 50.0),
        p95_ms: pct_ms(&h, 95.0),
        p99_ms: pct_ms(&h, 99.0),
        errors_by_kind: errors_by_kind(d),
        bytes_sent: d.steps.iter().map(|s| s.bytes_sent).sum(),
        bytes_received: d.steps.iter().map(|s| s.bytes_received).sum(),
    }
}

/// Latency figures in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Latency {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Histograms as base64 of the HDR V2 (deflate) encoding, mergeable by any HDR library.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Histograms {
    /// Microseconds from the intended start.
    pub latency: String,
    /// Microseconds from the send.
    pub service: String,
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    base64::engine::general_purpose::STANDARD.encode(histogram_bytes(h))
}

/// The HDR V2 (deflate) encoding of a histogram, as summaries carry it (base64).
pub fn histogram_bytes(h: &Histogram<u64>) -> Vec<u8> {
    serialize(V2DeflateSerializer::new(), h)
}

fn serialize(mut with: impl Serializer, h: &Histogram<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    with.serialize(h, &mut buf)
        .expect("serialising into a Vec cannot fail");
    buf
}

/// A histogram as runners send it in snapshots: HDR V2 without deflate. The varint run-length
/// encoding is already compact; deflating it cost the runner, and inflating it cost the
/// coordinator a third of its merge time (bench `coordinator_merge`), for ~2× fewer bytes on
/// a loopback or in-cluster link. `histogram_from_bytes` and the merge read both forms.
pub fn histogram_wire_bytes(h: &Histogram<u64>) -> Vec<u8> {
    serialize(V2Serializer::new(), h)
}

/// Decodes `histogram_bytes` or `histogram_wire_bytes`.
pub fn histogram_from_bytes(mut bytes: &[u8]) -> Result<Histogram<u64>, String> {
    Deserializer::new()
        .deserialize(&mut bytes)
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    /// Requests per second over the load window.
    pub rate: f64,
    pub outcomes: BTreeMap<String, u64>,
    /// Of `outcomes.server_error`, how many by the server's own code (`"409"`, `"WRONGTYPE"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub codes: BTreeMap<String, u64>,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub latency: Latency,
    pub service: Latency,
    pub histograms: Histograms,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub iterations: u64,
    pub dropped: u64,
    /// Iterations per second over the load window.
    pub rate: f64,
    pub requests: u64,
    /// Requests per second over the load window (all steps).
    pub request_rate: f64,
    /// Failed requests and failed connects.
    pub errors: u64,
    /// `errors` over every request and every failed connect: a request that failed is one
    /// failure of one, whether or not its connection was reopened after it.
    pub error_ratio: f64,
    /// Connects that failed (also in `errors`); `connects` counts the ones that succeeded.
    #[serde(default)]
    pub connect_errors: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connects: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// A sample of why: the first few distinct reasons of each kind, with their counts (a
    /// kind's reasons may add up to less than its count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_reasons: Vec<ErrorReason>,
    pub latency: Latency,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReason {
    /// The error kind (`tls`, `connect_failed` …), as in `errorsByKind`.
    pub kind: String,
    pub reason: String,
    pub count: u64,
}

/// The sample in `d`, as the summary shows it.
pub fn error_reasons(d: &Delta) -> Vec<ErrorReason> {
    d.reasons
        .sorted()
        .into_iter()
        .map(|r| ErrorReason {
            kind: r.outcome.as_str().to_string(),
            reason: r.text.clone(),
            count: r.count,
        })
        .collect()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    pub expression: String,
    /// What was observed (ms for latencies, a ratio for errors/checks, per second for rate),
    /// absent when there was nothing to measure.
    pub value: Option<f64>,
    pub passed: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub schema: String,
    pub name: String,
    /// The run's `{{ run.id }}` (absent in summaries written before it existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// RFC 3339.
    pub start_time: String,
    /// The load window in seconds (rates are per this window).
    pub duration_seconds: f64,
    /// Wall time from start to the last measurement, connecting and draining included.
    pub elapsed_seconds: f64,
    /// `open` or `closed`.
    pub model: String,
    pub target_rate: Option<f64>,
    pub connections: u64,
    pub totals: Totals,
    pub steps: Vec<StepSummary>,
    pub series: Vec<Point>,
    pub thresholds: Vec<ThresholdResult>,
    pub passed: bool,
}

/// Every `factor` consecutive points as one (see `Point::absorb`).
pub fn coarsen(series: &[Point], factor: usize) -> Vec<Point> {
    let mut previous = 0;
    series
        .chunks(factor.max(1))
        .map(|chunk| {
            let mut p = chunk[0].clone();
            let mut span = p.interval_from(previous);
            for later in &chunk[1..] {
                let covers = later.interval_from(p.t);
                p.absorb(later, span);
                span += covers;
            }
            previous = p.t;
            p
        })
        .collect()
}

fn outcome_map(counts: &[u64; Outcome::COUNT]) -> BTreeMap<String, u64> {
    Outcome::ALL
        .into_iter()
        .filter(|o| counts[*o as usize] > 0)
        .map(|o| (o.as_str().to_string(), counts[o as usize]))
        .collect()
}

pub struct RunInfo<'a> {
    pub name: &'a str,
    pub run_id: &'a str,
    pub step_names: &'a [String],
    pub start_time: std::time::SystemTime,
    pub duration: f64,
    pub elapsed: f64,
    /// Planned iterations/s averaged over the window (open model).
    pub target_rate: Option<f64>,
    pub connections: u64,
}

impl Summary {
    /// The summary as pretty JSON (`stampede run --out`, `stampede-operator local --out`).
    pub fn to_json_pretty(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a summary always serializes")
    }

    /// The summary as compact JSON, for where space is counted (a ConfigMap).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a summary always serializes")
    }

    /// Compact JSON of at most `max_bytes`, coarsening the series (pairs of points become one,
    /// as often as needed) rather than dropping any of the run: a Kubernetes object holds at
    /// most 1 MiB, and a day of 1 s points is ~30 MB. Everything else is kept whole; `None`
    /// when even a series of one point does not fit.
    pub fn to_json_within(&self, max_bytes: usize) -> Option<Vec<u8>> {
        let json = self.to_json();
        if json.len() <= max_bytes {
            return Some(json);
        }
        let mut coarse = self.clone();
        // Points are of similar size: start near the factor that fits, then halve further.
        let mut factor = (json.len() / max_bytes).max(1).next_power_of_two();
        loop {
            coarse.series = coarsen(&self.series, factor);
            let json = coarse.to_json();
            if json.len() <= max_bytes {
                return Some(json);
            }
            if coarse.series.len() <= 1 {
                return None;
            }
            factor *= 2;
        }
    }

    pub fn build(info: &RunInfo, c: &Collector) -> Summary {
        let t = &c.totals;
        let window = info.duration.max(1e-9);
        let steps: Vec<StepSummary> = info
            .step_names
            .iter()
            .zip(&t.steps)
            .map(|(name, s)| StepSummary {
                name: name.clone(),
                requests: s.requests(),
                errors: s.errors(),
                rate: s.requests() as f64 / window,
                outcomes: outcome_map(&s.outcomes),
                codes: s.codes.iter().map(|(c, n)| (c.to_string(), n)).collect(),
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                latency: Latency::of(&s.latency),
                service: Latency::of(&s.service),
                histograms: Histograms {
                    latency: encode_histogram(&s.latency),
                    service: encode_histogram(&s.service),
                },
            })
            .collect();
        let requests: u64 = steps.iter().map(|s| s.requests).sum();
        let errors = t.errors();
        let attempts = t.attempts();
        let totals = Totals {
            iterations: t.iterations,
            dropped: t.dropped,
            rate: t.iterations as f64 / window,
            requests,
            request_rate: requests as f64 / window,
            errors,
            error_ratio: if attempts == 0 {
                0.0
            } else {
                errors as f64 / attempts as f64
            },
            checks_passed: steps.iter().map(|s| s.checks_passed).sum(),
            checks_failed: steps.iter().map(|s| s.checks_failed).sum(),
            bytes_sent: steps.iter().map(|s| s.bytes_sent).sum(),
            bytes_received: steps.iter().map(|s| s.bytes_received).sum(),
            connects: t.connects,
            connect_errors: t.connect_failures(),
            errors_by_kind: errors_by_kind(t),
            error_reasons: error_reasons(t),
            latency: Latency::of(&merged_latency(&t.steps)),
        };
        Summary {
            schema: SUMMARY_SCHEMA.into(),
            name: info.name.to_string(),
            run_id: info.run_id.to_string(),
            start_time: humantime::format_rfc3339_millis(info.start_time).to_string(),
            duration_seconds: info.duration,
            elapsed_seconds: info.elapsed,
            model: if info.target_rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .into(),
            target_rate: info.target_rate,
            connections: info.connections,
            totals,
            steps,
            series: c.series.clone(),
            thresholds: Vec::new(),
            passed: true,
        }
    }
}

/// `--out`: checks before a test runs that its summary can be written there, so a typo does
/// not cost the whole run. A file this creates to find out is removed again; an existing file
/// is opened for appending only, so it is left as it was until the summary replaces it.
pub fn check_out(path: &std::path::Path) -> Result<(), String> {
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    let result = match probe {
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop),
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        format!(
            "--out {}: cannot write the summary there: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(worker: usize, second: u64, last: bool, iterations: u64) -> Report {
        let mut delta = Delta::new(1);
        delta.iterations = iterations;
        delta.steps[0].outcomes[0] = iterations;
        delta.steps[0].latency.record(1000 * second).unwrap();
        Report {
            worker,
            second,
            delta,
            last,
        }
    }

    #[test]
    fn a_second_is_emitted_once_every_worker_reported_it() {
        let mut c = Collector::new(1, 2, true);
        assert!(c.add(report(0, 1, false, 5)).is_empty());
        let p = c.add(report(1, 1, false, 7));
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].t, p[0].iterations, p[0].requests), (1, 12, 12));
        // A worker that is done no longer holds later seconds back.
        assert!(c.add(report(0, 2, false, 1)).is_empty());
        let p = c.add(report(1, 2, true, 1));
        assert_eq!(p.len(), 1);
        assert_eq!(c.totals.iterations, 14);
        assert_eq!(c.add(report(0, 3, true, 2)).len(), 1);
    }

    fn second(t: u64, iterations: u64, p99: f64) -> Point {
        Point {
            t,
            iterations,
            requests: iterations,
            target_rate: Some(100.0),
            p99_ms: Some(p99),
            errors_by_kind: [("timeout".to_string(), 1)].into(),
            ..Point::default()
        }
    }

    #[test]
    fn a_summary_too_big_for_its_limit_keeps_every_count_at_a_coarser_resolution() {
        let mut s = Summary {
            name: "long".into(),
            ..Summary::default()
        };
        s.series = (1..=20_000)
            .map(|t| second(t, 100, (t % 7) as f64))
            .collect();
        let full = s.to_json().len();
        let json = s.to_json_within(full / 5).expect("fits once coarsened");
        assert!(json.len() <= full / 5);
        let back: Summary = serde_json::from_slice(&json).unwrap();
        assert!(back.series.len() < s.series.len());
        assert_eq!(
            back.series.iter().map(|p| p.iterations).sum::<u64>(),
            2_000_000
        );
        assert_eq!(
            back.series
                .iter()
                .map(|p| p.errors_by_kind["timeout"])
                .sum::<u64>(),
            20_000
        );
        assert_eq!(back.series.last().unwrap().t, 20_000);
        assert!(back.series.iter().all(|p| p.p99_ms == Some(6.0)));
        assert!(back.series.iter().all(|p| p.target_rate == Some(100.0)));
        // Small enough already: untouched.
        assert_eq!(s.to_json_within(full).unwrap(), s.to_json());
        // Nothing can make the rest fit.
        assert_eq!(s.to_json_within(10), None);
    }

    #[test]
    fn histograms_survive_the_summary_encoding() {
        let mut h = new_histogram();
        for v in [1u64, 250, 9_999, 3_600_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back, h);
    }
}
