//! Merged results for every backend: a live point per interval, the current figures shown in
//! a LoadTest's status, and the final summary with its threshold verdict.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use stampede_api::console::fmt_ms;
use stampede_api::crd::{CurrentStatus, ThresholdStatus, TotalsStatus};
use stampede_api::proto::Snapshot;
use stampede_api::results::{Collector, Point, RunInfo, Summary};
use stampede_api::stats::{Delta, new_histogram};
use stampede_api::verdict::display_value;

use crate::coordinator::TestSpec;
use crate::merge::{merge, step_names};

pub fn point(
    t: u64,
    now: &Delta,
    prev: &Delta,
    target_rate: Option<f64>,
    target_connections: u64,
) -> Point {
    let mut lat_now = new_histogram();
    let mut lat_prev = new_histogram();
    for s in &now.steps {
        let _ = lat_now.add(&s.latency);
    }
    for s in &prev.steps {
        let _ = lat_prev.add(&s.latency);
    }
    let _ = lat_now.subtract(&lat_prev);
    let pct = |q: f64| (!lat_now.is_empty()).then(|| lat_now.value_at_quantile(q) as f64 / 1000.0);
    let req = |d: &Delta| d.steps.iter().map(|s| s.requests()).sum::<u64>();
    let err = |d: &Delta| {
        d.steps.iter().map(|s| s.errors()).sum::<u64>() + d.connect_errors.iter().sum::<u64>()
    };
    Point {
        t,
        iterations: now.iterations.saturating_sub(prev.iterations),
        requests: req(now).saturating_sub(req(prev)),
        errors: err(now).saturating_sub(err(prev)),
        dropped: now.dropped.saturating_sub(prev.dropped),
        active_connections: now.active_connections,
        target_connections,
        target_rate,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        errors_by_kind: Default::default(),
        bytes_sent: 0,
        bytes_received: 0,
    }
}

/// The merged summary of a test, its thresholds evaluated.
pub fn summarize(
    spec: &TestSpec,
    snaps: &[(u32, Snapshot)],
    series: Vec<Point>,
    start_time: SystemTime,
    elapsed: f64,
    runners: usize,
) -> Summary {
    let names = step_names(snaps);
    let mut collector = Collector::new(names.len(), runners, spec.budget.rate.is_some());
    collector.totals = merge(&names, snaps);
    collector.series = series;
    let info = RunInfo {
        name: &spec.name,
        step_names: &names,
        start_time,
        duration: spec.budget.total(),
        elapsed,
        target_rate: spec.budget.planned_rate(),
        connections: spec.budget.connections,
    };
    let mut summary = Summary::build(&info, &collector);
    let thresholds = stampede_api::parse(&spec.yaml)
        .map(|f| f.spec.thresholds)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| stampede_api::threshold::Threshold::parse(t).ok())
        .collect::<Vec<_>>();
    stampede_api::verdict::apply(&mut summary, &thresholds);
    summary
}

/// A summary's thresholds and totals as a LoadTest status shows them.
pub fn status_parts(s: &Summary) -> (Vec<ThresholdStatus>, TotalsStatus) {
    let thresholds = s
        .thresholds
        .iter()
        .map(|t| ThresholdStatus {
            expression: t.expression.clone(),
            value: display_value(t),
            passed: t.passed,
        })
        .collect();
    let totals = TotalsStatus {
        iterations: s.totals.iterations,
        requests: s.totals.requests,
        errors: s.totals.errors,
        dropped: s.totals.dropped,
    };
    (thresholds, totals)
}

/// How far back `current` looks, and how often it is recomputed. Recomputing on a cadence
/// rather than on every call keeps status writes idempotent between ticks, so the operator's
/// own status patch does not retrigger a write.
const WINDOW: Duration = Duration::from_secs(10);
const REFRESH: Duration = Duration::from_secs(2);

/// Samples of the merged totals, for figures over the last seconds.
#[derive(Default)]
pub struct Window {
    samples: VecDeque<(Instant, Delta)>,
    cached: Option<(CurrentStatus, TotalsStatus)>,
}

impl Window {
    /// The current figures, recomputed at most every two seconds.
    pub fn current(
        &mut self,
        now: Instant,
        snaps: &[(u32, Snapshot)],
    ) -> (CurrentStatus, TotalsStatus) {
        let fresh = self
            .samples
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) < REFRESH);
        if let (true, Some(c)) = (fresh, &self.cached) {
            return c.clone();
        }
        let names = step_names(snaps);
        let total = merge(&names, snaps);
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, base) = match self.samples.front() {
            Some((t, d)) => (now.duration_since(*t).as_secs_f64(), d.clone()),
            None => (0.0, Delta::default()),
        };
        let p = point(0, &total, &base, None, 0);
        let attempts = p.requests + total.connect_errors.iter().sum::<u64>()
            - base.connect_errors.iter().sum::<u64>();
        let current = CurrentStatus {
            rate: if since > 0.0 {
                (p.iterations as f64 / since * 10.0).round() / 10.0
            } else {
                0.0
            },
            connections: total.active_connections,
            p50: p.p50_ms.map(fmt_ms).unwrap_or_default(),
            p99: p.p99_ms.map(fmt_ms).unwrap_or_default(),
            error_ratio: if attempts > 0 {
                (p.errors as f64 / attempts as f64 * 1e4).round() / 1e4
            } else {
                0.0
            },
        };
        let totals = TotalsStatus {
            iterations: total.iterations,
            requests: total.steps.iter().map(|s| s.requests()).sum(),
            errors: total.steps.iter().map(|s| s.errors()).sum::<u64>()
                + total.connect_errors.iter().sum::<u64>(),
            dropped: total.dropped,
        };
        self.samples.push_back((now, total));
        self.cached = Some((current, totals));
        self.cached.clone().expect("just set")
    }
}
