//! Thresholds evaluated over a summary: one verdict for the whole run.
//! Pure: reads the summary, writes its `thresholds` and `passed`.

use crate::threshold::{Metric, Threshold};
use hdrhistogram::Histogram;

use crate::results::{Summary, ThresholdResult, decode_histogram};
use crate::stats::new_histogram;

/// Evaluates `thresholds`, records each result in the summary and sets `passed`.
pub fn apply(summary: &mut Summary, thresholds: &[Threshold]) {
    summary.thresholds = thresholds.iter().map(|t| evaluate(summary, t)).collect();
    summary.passed = summary.thresholds.iter().all(|r| r.passed);
}

fn latency_histogram(summary: &Summary, step: Option<&str>) -> Histogram<u64> {
    let mut h = new_histogram();
    for s in summary
        .steps
        .iter()
        .filter(|s| step.is_none_or(|n| n == s.name))
    {
        if let Ok(x) = decode_histogram(&s.histograms.latency) {
            let _ = h.add(&x);
        }
    }
    h
}

/// The observed value in the threshold's own units (seconds, ratio, per second).
fn observe(summary: &Summary, t: &Threshold) -> Option<f64> {
    let step = t.step.as_deref();
    let steps = || {
        summary
            .steps
            .iter()
            .filter(move |s| step.is_none_or(|n| n == s.name))
    };
    match t.metric {
        Metric::Percentile(q) => {
            let h = latency_histogram(summary, step);
            (!h.is_empty()).then(|| h.value_at_quantile(q / 100.0) as f64 / 1e6)
        }
        Metric::Avg => {
            let h = latency_histogram(summary, step);
            (!h.is_empty()).then(|| h.mean() / 1e6)
        }
        Metric::Max => {
            let h = latency_histogram(summary, step);
            (!h.is_empty()).then(|| h.max() as f64 / 1e6)
        }
        Metric::Errors => match (step, t.code.as_deref()) {
            (_, Some(code)) => {
                // Server errors with that code, over every request of the step(s).
                let (req, err) = steps().fold((0, 0), |(r, e), s| {
                    (r + s.requests, e + s.codes.get(code).copied().unwrap_or(0))
                });
                (req > 0).then(|| err as f64 / req as f64)
            }
            (None, None) => {
                (summary.totals.requests + summary.totals.errors + summary.totals.connects > 0)
                    .then_some(summary.totals.error_ratio)
            }
            (Some(_), None) => {
                let (req, err) = steps().fold((0, 0), |(r, e), s| (r + s.requests, e + s.errors));
                (req > 0).then(|| err as f64 / req as f64)
            }
        },
        Metric::Checks => {
            let (p, f) = steps().fold((0, 0), |(p, f), s| {
                (p + s.checks_passed, f + s.checks_failed)
            });
            (p + f > 0).then(|| p as f64 / (p + f) as f64)
        }
        Metric::Rate => match step {
            None => Some(summary.totals.rate),
            Some(_) => Some(steps().map(|s| s.rate).sum()),
        },
    }
}

fn evaluate(summary: &Summary, t: &Threshold) -> ThresholdResult {
    let observed = observe(summary, t);
    ThresholdResult {
        expression: t.source.clone(),
        // Latencies are reported in milliseconds, like everything else in the summary.
        value: observed.map(|v| if t.metric.is_latency() { v * 1000.0 } else { v }),
        passed: observed.is_some_and(|v| t.op.holds(v, t.value)),
    }
}

/// How a threshold's observed value reads to a person.
pub fn display_value(t: &ThresholdResult) -> String {
    let Some(v) = t.value else {
        return "no data".into();
    };
    let th = Threshold::parse(&t.expression).ok();
    match th.map(|t| t.metric) {
        Some(m) if m.is_latency() => crate::units::fmt_ms(v),
        Some(m) if m.is_ratio() => format!("{:.3}%", v * 100.0),
        _ => format!("{v:.1}/s"),
    }
}
