//! Merging runners' cumulative snapshots into one set of totals: counters summed, HDR
//! histograms added, steps matched by name. Pure.

use std::borrow::Borrow;

use stampede_api::hdr_add::HistogramSum;
use stampede_api::proto::{Snapshot, StepSnapshot};
use stampede_api::stats::{Delta, Outcome, StepStats};

/// Which latency histograms a merge adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Histograms {
    /// From the intended start only: what live figures and `/metrics` show. Half the work of
    /// `Both`, which matters at one merge a second.
    Latency,
    /// Also the service time (from the actual send), for the final summary.
    Both,
}

/// Step names in order of first appearance across the snapshots.
pub fn step_names<S: Borrow<Snapshot>>(snaps: &[(u32, S)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, s) in snaps {
        for st in &s.borrow().steps {
            if !names.contains(&st.name) {
                names.push(st.name.clone());
            }
        }
    }
    names
}

/// Adds a snapshot's runner-wide counters and gauges.
fn add_session(total: &mut Delta, s: &Snapshot) {
    total.iterations += s.iterations;
    total.dropped += s.dropped;
    total.connects += s.connects;
    total.connects_used += s.connects_used;
    total.active_connections += s.active_connections;
    for (kind, n) in &s.connect_errors {
        if let Some(o) = Outcome::from_name(kind) {
            total.connect_errors[o as usize] += n;
        }
    }
    // Bounded again here: a runner's sample is not trusted to be.
    for r in &s.reasons {
        if let Some(o) = Outcome::from_name(&r.kind) {
            total.reasons.note_n(o, &r.text, r.count);
        }
    }
}

/// Adds a step snapshot's counters (not its histograms).
fn add_step(step: &mut StepStats, st: &StepSnapshot) {
    for (kind, n) in &st.outcomes {
        if let Some(o) = Outcome::from_name(kind) {
            step.outcomes[o as usize] += n;
        }
    }
    // Bounded again here, as the reasons are.
    for (code, n) in &st.codes {
        step.codes.add(code, *n);
    }
    step.checks_passed += st.checks_passed;
    step.checks_failed += st.checks_failed;
    step.bytes_sent += st.bytes_sent;
    step.bytes_received += st.bytes_received;
}

/// The sum of every session's latest cumulative snapshot.
pub fn merge<S: Borrow<Snapshot>>(
    names: &[String],
    snaps: &[(u32, S)],
    which: Histograms,
) -> Delta {
    let mut total = Delta::new(names.len());
    let sums = || -> Vec<HistogramSum> {
        total
            .steps
            .iter()
            .map(|s| HistogramSum::like(&s.latency))
            .collect()
    };
    let mut latency = sums();
    let mut service = if which == Histograms::Both {
        sums()
    } else {
        Vec::new()
    };
    for (_, s) in snaps {
        let s = s.borrow();
        add_session(&mut total, s);
        for st in &s.steps {
            let Some(i) = names.iter().position(|n| *n == st.name) else {
                continue;
            };
            add_step(&mut total.steps[i], st);
            // A histogram that does not decode (only a broken runner sends one) is counted as far
            // as it decodes; the counters above stay whole.
            let _ = latency[i].add_encoded(&st.latency);
            if which == Histograms::Both {
                let _ = service[i].add_encoded(&st.service);
            }
        }
    }
    for (step, sum) in total.steps.iter_mut().zip(latency) {
        step.latency = sum.into_histogram();
    }
    for (step, sum) in total.steps.iter_mut().zip(service) {
        step.service = sum.into_histogram();
    }
    total
}

/// Every session's latest snapshot summed as one step: the counters of all steps, and the
/// latency of all steps from each snapshot's `latency_all` (or, from a runner that does not
/// send it, from its steps). What a point of the 1 s series needs, at one histogram per
/// runner instead of one per runner and step.
pub fn merge_overall<S: Borrow<Snapshot>>(snaps: &[(u32, S)]) -> Delta {
    let mut total = Delta::new(1);
    let mut latency = HistogramSum::like(&total.steps[0].latency);
    for (_, s) in snaps {
        let s = s.borrow();
        add_session(&mut total, s);
        for st in &s.steps {
            add_step(&mut total.steps[0], st);
            if s.latency_all.is_empty() {
                let _ = latency.add_encoded(&st.latency);
            }
        }
        if !s.latency_all.is_empty() {
            let _ = latency.add_encoded(&s.latency_all);
        }
    }
    total.steps[0].latency = latency.into_histogram();
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_api::results::histogram_bytes;
    use stampede_api::stats::new_histogram;

    fn snap(values: &[u64]) -> Snapshot {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        Snapshot {
            iterations: values.len() as u64,
            steps: vec![StepSnapshot {
                name: "s".into(),
                outcomes: [("ok".to_string(), values.len() as u64)].into(),
                latency: histogram_bytes(&h).into(),
                service: histogram_bytes(&h).into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn merging_three_runners_equals_the_histogram_of_all_their_samples() {
        let parts = [vec![100u64, 200, 300], vec![5_000, 7], vec![42; 10]];
        let snaps: Vec<(u32, Snapshot)> = parts
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, snap(v)))
            .collect();
        let names = step_names(&snaps);
        let merged = merge(&names, &snaps, Histograms::Both);
        let mut union = new_histogram();
        for v in parts.iter().flatten() {
            union.record(*v).unwrap();
        }
        assert_eq!(merged.steps[0].latency, union);
        assert_eq!(merged.iterations, 15);
        assert_eq!(merged.steps[0].requests(), 15);
    }

    #[test]
    fn the_overall_sum_uses_latency_all_and_falls_back_to_the_steps() {
        let parts = [vec![100u64, 200, 300], vec![5_000, 7], vec![42; 10]];
        let mut snaps: Vec<(u32, Snapshot)> = parts
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, snap(v)))
            .collect();
        // The first runner sends its all-steps histogram; the others (older) do not.
        snaps[0].1.latency_all = snaps[0].1.steps[0].latency.clone();
        let overall = merge_overall(&snaps);
        let mut union = new_histogram();
        for v in parts.iter().flatten() {
            union.record(*v).unwrap();
        }
        assert_eq!(overall.steps.len(), 1);
        assert_eq!(overall.steps[0].latency, union);
        assert_eq!(overall.iterations, 15);
        assert_eq!(overall.steps[0].requests(), 15);
    }

    #[test]
    fn runners_reason_samples_merge_within_the_bounds_and_unknown_kinds_are_ignored() {
        let reason = |kind: &str, text: &str, count| stampede_api::proto::ErrorReason {
            kind: kind.into(),
            text: text.into(),
            count,
        };
        let mut a = snap(&[1]);
        a.reasons = vec![
            reason("tls", "invalid peer certificate: UnknownIssuer", 4),
            reason("no_such_kind", "x", 1),
        ];
        let mut b = snap(&[1]);
        b.reasons = (0..10)
            .map(|i| reason("tls", &format!("r{i}"), 1))
            .chain([reason("tls", "invalid peer certificate: UnknownIssuer", 3)])
            .collect();
        let snaps = vec![(0, a), (1, b)];
        let total = merge(&step_names(&snaps), &snaps, Histograms::Latency);
        let v = total.reasons.sorted();
        assert_eq!(v.len(), stampede_api::stats::Reasons::PER_KIND, "{v:?}");
        assert_eq!(
            (v[0].text.as_str(), v[0].count),
            ("invalid peer certificate: UnknownIssuer", 7)
        );
    }
}
