//! Merging runners' cumulative snapshots into one set of totals: counters summed, HDR
//! histograms added, steps matched by name. Pure.

use stampede_api::proto::Snapshot;
use stampede_api::results::histogram_from_bytes;
use stampede_api::stats::{Delta, Outcome, StepStats};

/// Step names in order of first appearance across the snapshots.
pub fn step_names(snaps: &[(u32, Snapshot)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, s) in snaps {
        for st in &s.steps {
            if !names.contains(&st.name) {
                names.push(st.name.clone());
            }
        }
    }
    names
}

/// The sum of every session's latest cumulative snapshot.
pub fn merge(names: &[String], snaps: &[(u32, Snapshot)]) -> Delta {
    let mut total = Delta::new(names.len());
    for (_, s) in snaps {
        total.iterations += s.iterations;
        total.dropped += s.dropped;
        total.connects += s.connects;
        total.active_connections += s.active_connections;
        for (kind, n) in &s.connect_errors {
            if let Some(o) = Outcome::from_name(kind) {
                total.connect_errors[o as usize] += n;
            }
        }
        for st in &s.steps {
            let Some(i) = names.iter().position(|n| *n == st.name) else {
                continue;
            };
            let mut one = StepStats::default();
            for (kind, n) in &st.outcomes {
                if let Some(o) = Outcome::from_name(kind) {
                    one.outcomes[o as usize] += n;
                }
            }
            one.checks_passed = st.checks_passed;
            one.checks_failed = st.checks_failed;
            one.bytes_sent = st.bytes_sent;
            one.bytes_received = st.bytes_received;
            // A snapshot whose histogram does not decode still contributes its counters.
            if let Ok(h) = histogram_from_bytes(&st.latency) {
                one.latency = h;
            }
            if let Ok(h) = histogram_from_bytes(&st.service) {
                one.service = h;
            }
            total.steps[i].add(&one);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_api::proto::StepSnapshot;
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
                latency: histogram_bytes(&h),
                service: histogram_bytes(&h),
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
        let merged = merge(&names, &snaps);
        let mut union = new_histogram();
        for v in parts.iter().flatten() {
            union.record(*v).unwrap();
        }
        assert_eq!(merged.steps[0].latency, union);
        assert_eq!(merged.iterations, 15);
        assert_eq!(merged.steps[0].requests(), 15);
    }
}
