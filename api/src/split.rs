//! The budget split: totals of connections and rate divided across N parts (runners, or
//! threads inside one runner) so that the parts sum exactly to the totals.
//! Pure: no I/O, property-tested.

/// Rates are split in whole micro-iterations per second so that the parts add up exactly.
const RATE_UNITS: f64 = 1_000_000.0;

/// Splits `total` into `n` parts that differ by at most one and sum to `total`; the first
/// `total % n` parts carry the extra one.
pub fn split_count(total: u64, n: usize) -> Vec<u64> {
    assert!(n > 0, "split into zero parts");
    let n64 = n as u64;
    (0..n64)
        .map(|i| total / n64 + u64::from(i < total % n64))
        .collect()
}

/// Splits a rate (per second) into `n` parts summing to it exactly in micro-units.
pub fn split_rate(total: f64, n: usize) -> Vec<f64> {
    let units = (total.max(0.0) * RATE_UNITS).round() as u64;
    split_count(units, n)
        .into_iter()
        .map(|u| u as f64 / RATE_UNITS)
        .collect()
}

/// A stage's targets: (rate, connections), each `None` where the stage leaves it unchanged.
pub type StageTarget = (Option<f64>, Option<u64>);

/// The part of a budget one member gets: same shape as the whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub connections: u64,
    pub rate: Option<f64>,
    pub stages: Vec<StageTarget>,
}

/// Splits a whole budget across `n` members: connections, rate and every stage.
pub fn split_budget(
    connections: u64,
    rate: Option<f64>,
    stages: &[StageTarget],
    n: usize,
) -> Vec<Share> {
    split_budget_capped(connections, rate, stages, n, None)
}

/// Like [`split_budget`], with no member holding more than `cap` connections (at the start or
/// in any stage): while too few members are live to hold the whole budget, each holds `cap`
/// and the rest waits for the missing members. Rates are never capped: the open model's
/// arrivals are what the test is about, and a full runner queues or drops them visibly.
pub fn split_budget_capped(
    connections: u64,
    rate: Option<f64>,
    stages: &[StageTarget],
    n: usize,
    cap: Option<u64>,
) -> Vec<Share> {
    let limit = |c: u64| cap.map_or(c, |cap| c.min(cap.saturating_mul(n as u64)));
    let conns = split_count(limit(connections), n);
    let rates = rate.map(|r| split_rate(r, n));
    let stage_rates: Vec<Option<Vec<f64>>> = stages
        .iter()
        .map(|(r, _)| r.map(|r| split_rate(r, n)))
        .collect();
    let stage_conns: Vec<Option<Vec<u64>>> = stages
        .iter()
        .map(|(_, c)| c.map(|c| split_count(limit(c), n)))
        .collect();
    (0..n)
        .map(|i| Share {
            connections: conns[i],
            rate: rates.as_ref().map(|r| r[i]),
            stages: stage_rates
                .iter()
                .zip(&stage_conns)
                .map(|(r, c)| (r.as_ref().map(|r| r[i]), c.as_ref().map(|c| c[i])))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn counts_sum_exactly_and_differ_by_at_most_one(total in 0u64..10_000_000, n in 1usize..300) {
            let parts = split_count(total, n);
            prop_assert_eq!(parts.len(), n);
            prop_assert_eq!(parts.iter().sum::<u64>(), total);
            let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            prop_assert!(hi - lo <= 1);
        }

        #[test]
        fn rates_sum_exactly_in_micro_units(total in 0.0f64..1e7, n in 1usize..300) {
            let parts = split_rate(total, n);
            let units: u64 = parts.iter().map(|p| (p * RATE_UNITS).round() as u64).sum();
            prop_assert_eq!(units, (total * RATE_UNITS).round() as u64);
        }

        #[test]
        fn every_stage_is_split_like_the_totals(
            c in 0u64..1_000_000, r in 0.0f64..1e6, sc in 0u64..1_000_000, sr in 0.0f64..1e6, n in 1usize..64
        ) {
            let shares = split_budget(c, Some(r), &[(Some(sr), Some(sc)), (None, None)], n);
            prop_assert_eq!(shares.iter().map(|s| s.connections).sum::<u64>(), c);
            prop_assert_eq!(shares.iter().map(|s| s.stages[0].1.unwrap()).sum::<u64>(), sc);
            let su: u64 = shares.iter().map(|s| (s.stages[0].0.unwrap() * RATE_UNITS).round() as u64).sum();
            prop_assert_eq!(su, (sr * RATE_UNITS).round() as u64);
            prop_assert!(shares.iter().all(|s| s.stages[1] == (None, None)));
        }

        #[test]
        fn a_cap_is_never_exceeded_and_otherwise_the_split_is_exact(
            c in 0u64..1_000_000, sc in 0u64..1_000_000, cap in 1u64..100_000, n in 1usize..64
        ) {
            let shares = split_budget_capped(c, Some(100.0), &[(None, Some(sc))], n, Some(cap));
            for (total, part) in [(c, Box::new(|s: &Share| s.connections) as Box<dyn Fn(&Share) -> u64>),
                                  (sc, Box::new(|s: &Share| s.stages[0].1.unwrap()))] {
                let parts: Vec<u64> = shares.iter().map(&part).collect();
                prop_assert!(parts.iter().all(|p| *p <= cap));
                prop_assert_eq!(parts.iter().sum::<u64>(), total.min(cap * n as u64));
                let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
                prop_assert!(hi - lo <= 1);
            }
        }
    }
}
