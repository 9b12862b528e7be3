//! Merged results for every backend: a live point per interval, the current figures shown in
//! a LoadTest's status, and the final summary with its threshold verdict.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use stampede_api::crd::{CurrentStatus, StepStatus, ThresholdStatus, TotalsStatus};
use stampede_api::plan::Plan;
use stampede_api::proto::Snapshot;
use stampede_api::results::{Collector, Point, RunInfo, Summary, coarsen, errors_by_kind};
use stampede_api::stats::{Delta, new_histogram};
use stampede_api::units::fmt_ms;
use stampede_api::verdict::display_value;

use crate::coordinator::{Coordinator, Merged, TestSpec};
use crate::merge::{Histograms, merge, step_names};

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
    Point {
        t,
        iterations: now.iterations.saturating_sub(prev.iterations),
        requests: now.requests().saturating_sub(prev.requests()),
        errors: now.errors().saturating_sub(prev.errors()),
        dropped: now.dropped.saturating_sub(prev.dropped),
        active_connections: now.active_connections,
        target_connections,
        target_rate,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        errors_by_kind: {
            let before = errors_by_kind(prev);
            errors_by_kind(now)
                .into_iter()
                .map(|(k, n)| {
                    let n = n.saturating_sub(before.get(&k).copied().unwrap_or(0));
                    (k, n)
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        },
        bytes_sent: bytes(now, |s| s.bytes_sent).saturating_sub(bytes(prev, |s| s.bytes_sent)),
        bytes_received: bytes(now, |s| s.bytes_received)
            .saturating_sub(bytes(prev, |s| s.bytes_received)),
    }
}

fn bytes(d: &Delta, f: fn(&stampede_api::stats::StepStats) -> u64) -> u64 {
    d.steps.iter().map(f).sum()
}

/// The merged summary of a test, its thresholds evaluated.
pub fn summarize<S: std::borrow::Borrow<Snapshot>>(
    spec: &TestSpec,
    snaps: &[(u32, S)],
    series: Vec<Point>,
    start_time: SystemTime,
    elapsed: f64,
    runners: usize,
    stopped_after: Option<f64>,
) -> Summary {
    let names = step_names(snaps);
    let mut collector = Collector::new(names.len(), runners, spec.budget.rate.is_some());
    collector.totals = merge(&names, snaps, Histograms::Both);
    // Rates are per second of load: a test stopped early (Ctrl-C) is measured up to the
    // stop, not through the drain that followed it.
    let duration = stopped_after.map_or(spec.budget.total(), |s| s.min(spec.budget.total()));
    let target_rate = stampede_api::plan::planned_rate(&spec.budget)
        .map(|last| planned_over(&series, duration).unwrap_or(last));
    collector.series = series;
    let info = RunInfo {
        name: &spec.name,
        run_id: &spec.run_id,
        step_names: &names,
        start_time,
        duration,
        elapsed,
        target_rate,
        connections: spec.budget.peak_connections(),
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

/// The target rate averaged over the seconds of load the series covers: what was planned,
/// live patches included (the last revision's plan alone misstates a patched test).
fn planned_over(series: &[Point], duration: f64) -> Option<f64> {
    let load: Vec<f64> = series
        .iter()
        .filter(|p| (p.t as f64) <= duration.ceil())
        .filter_map(|p| p.target_rate)
        .collect();
    (!load.is_empty()).then(|| load.iter().sum::<f64>() / load.len() as f64)
}

/// One step as a LoadTest status shows it; latencies in milliseconds.
fn step_status(name: &str, requests: u64, errors: u64, p50: f64, p95: f64, p99: f64) -> StepStatus {
    let ms = |v: f64| {
        if requests > 0 {
            fmt_ms(v)
        } else {
            String::new()
        }
    };
    StepStatus {
        name: name.to_string(),
        requests,
        errors,
        p50: ms(p50),
        p95: ms(p95),
        p99: ms(p99),
    }
}

/// Per-step figures of a merge, for the status while the test runs.
pub fn live_steps(merged: &Merged) -> Vec<StepStatus> {
    merged
        .names
        .iter()
        .zip(&merged.total.steps)
        .map(|(name, s)| {
            let l = stampede_api::results::Latency::of(&s.latency);
            step_status(name, s.requests(), s.errors(), l.p50, l.p95, l.p99)
        })
        .collect()
}

/// A summary's per-step figures, for the final status.
pub fn summary_steps(s: &Summary) -> Vec<StepStatus> {
    s.steps
        .iter()
        .map(|st| {
            let l = &st.latency;
            step_status(&st.name, st.requests, st.errors, l.p50, l.p95, l.p99)
        })
        .collect()
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

/// The totals with every step folded into one: what the status figures need, at one
/// histogram pair per kept sample instead of one per step (20 steps: 0.4 MiB, not 7.5 MiB).
pub fn all_steps_as_one(d: &Delta) -> Delta {
    let mut step = stampede_api::stats::StepStats::default();
    for s in &d.steps {
        step.add(s);
    }
    Delta {
        steps: vec![step],
        iterations: d.iterations,
        dropped: d.dropped,
        connects: d.connects,
        connects_used: d.connects_used,
        connect_errors: d.connect_errors,
        active_connections: d.active_connections,
        target_rate: d.target_rate,
        target_connections: d.target_connections,
        // Status figures show counts only; the summary keeps the reasons.
        reasons: Default::default(),
    }
}

/// How far back `current` looks, and how often it is recomputed. Recomputing on a cadence
/// rather than on every call keeps status writes idempotent between refreshes, so live
/// figures cost at most one status write per test every 5 s, and the operator's own write
/// does not retrigger one.
const WINDOW: Duration = Duration::from_secs(10);
pub const REFRESH: Duration = Duration::from_secs(5);

/// Samples of the merged totals, for figures over the last seconds.
#[derive(Default)]
pub struct Window {
    samples: VecDeque<(Instant, Delta)>,
    cached: Option<Figures>,
}

/// What the status shows while a test runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub current: CurrentStatus,
    pub totals: TotalsStatus,
    pub steps: Vec<StepStatus>,
}

impl Window {
    /// The current figures, recomputed at most every `REFRESH`.
    /// `merged` is called only when the figures are recomputed: a merge of every step is the
    /// coordinator's most expensive work.
    pub fn current(&mut self, now: Instant, merged: impl FnOnce() -> Arc<Merged>) -> Figures {
        let fresh = self
            .samples
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) < REFRESH);
        if let (true, Some(c)) = (fresh, &self.cached) {
            return c.clone();
        }
        let merged = merged();
        let total = all_steps_as_one(&merged.total);
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
        let attempts = total.attempts().saturating_sub(base.attempts());
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
            requests: total.requests(),
            errors: total.errors(),
            dropped: total.dropped,
        };
        self.samples.push_back((now, total));
        let figures = Figures {
            current,
            totals,
            steps: live_steps(&merged),
        };
        self.cached = Some(figures.clone());
        figures
    }
}

/// The run's time series is kept at 1 s resolution up to this many points (6 h); past that,
/// pairs of points become one, so a long test's memory stays bounded (~1.5 MiB) and no
/// second of it is lost, only its resolution.
pub const MAX_SERIES_POINTS: usize = 6 * 3600;

/// Records one merged point a second, from the start of the plan, while `series` is alive
/// (the task ends when the test's tracking record that owns it is dropped). `taken_over`: this
/// operator took a running test over from another; the runners' first snapshots then hold
/// the whole run so far, which is not one second's worth: they become the baseline.
pub async fn record_series(
    coordinator: Coordinator,
    series: std::sync::Weak<std::sync::Mutex<VecDeque<Point>>>,
    taken_over: bool,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = Delta::default();
    let mut baseline_pending = taken_over;
    let mut last_t = 0u64;
    loop {
        tick.tick().await;
        let Some(series) = series.upgrade() else {
            return;
        };
        let Some(start) = coordinator.start_time() else {
            continue;
        };
        let Ok(elapsed) = SystemTime::now().duration_since(start) else {
            continue;
        };
        let t = elapsed.as_secs();
        if t == 0 || t == last_t {
            continue;
        }
        last_t = t;
        let spec = coordinator.spec();
        let plan = Plan::new(&spec.budget.share(0, 1));
        let at = elapsed.as_secs_f64().min(spec.budget.total());
        let total = coordinator.overall().as_ref().clone();
        if baseline_pending {
            if !coordinator.live().is_empty() && total.iterations + total.connects > 0 {
                baseline_pending = false;
                prev = total;
            }
            continue;
        }
        let p = point(
            t,
            &total,
            &prev,
            spec.budget.rate.map(|_| plan.rate_at(at)),
            plan.connections_at(at),
        );
        prev = total;
        let mut s = series.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= MAX_SERIES_POINTS {
            let halved = coarsen(&s.make_contiguous()[..], 2);
            *s = halved.into();
        }
        s.push_back(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_rate_is_the_plans_average_over_the_load_with_live_patches() {
        // 2 s at 100/s, then a patch to 400/s for 2 s; the drain's second plans nothing.
        let point = |t, rate| Point {
            t,
            target_rate: Some(rate),
            ..Default::default()
        };
        let series = [
            point(1, 100.0),
            point(2, 100.0),
            point(3, 400.0),
            point(4, 400.0),
            point(5, 0.0),
        ];
        assert_eq!(planned_over(&series, 4.0), Some(250.0));
        assert_eq!(planned_over(&[], 4.0), None);
    }
}
