//! An assignment: a budget (connections, rate, stages, duration) for a whole test, a runner
//! or one worker thread. The engine takes a new one at any time; workers split it among
//! themselves with the same budget split the operator uses across runners.

use std::sync::Arc;

use crate::LoadTestSpec;
use crate::split::split_budget;

#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub connections: u64,
    pub rate: Option<f64>,
    /// (duration s, target rate, target connections).
    pub stages: Vec<(f64, Option<f64>, Option<u64>)>,
    /// Seconds, used when `stages` is empty.
    pub duration: f64,
    /// Which of the whole test's equal parts of the schedule this is (open model).
    pub lanes: Lanes,
    /// The schedule the lanes are parts of (the whole test's rate and stages); `None` when
    /// this assignment is itself the whole.
    pub whole: Option<Arc<Assignment>>,
}

/// Part `index` of `count` equal parts of a test's schedule: of the whole test's iterations
/// 0, 1, 2 … this part fires those numbered `index` mod `count`, each at the instant the
/// whole schedule gives it. Every part reads the same whole schedule, so each iteration
/// belongs to exactly one part and the parts add up to exactly the planned count, whatever
/// the rounding of their rates. Without it every runner counted from 0 on its own share,
/// and three runners of 1,666.67 iterations each ran 5,001 of 5,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lanes {
    pub index: u64,
    pub count: u64,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { index: 0, count: 1 }
    }
}

impl Lanes {
    /// Part `index` of `count` of this part (a runner's share split across its workers).
    pub fn split(self, index: usize, count: usize) -> Lanes {
        Lanes {
            index: self.index * count as u64 + index as u64,
            count: self.count.max(1) * count as u64,
        }
    }
}

impl Assignment {
    pub fn from_spec(spec: &LoadTestSpec) -> Assignment {
        Assignment {
            connections: u64::from(spec.connections),
            rate: spec.rate,
            stages: spec
                .stages
                .iter()
                .map(|s| {
                    (
                        s.duration.as_std().as_secs_f64(),
                        s.rate,
                        s.connections.map(u64::from),
                    )
                })
                .collect(),
            duration: spec
                .duration
                .map(|d| d.as_std().as_secs_f64())
                .unwrap_or(0.0),
            lanes: Lanes::default(),
            whole: None,
        }
    }

    /// The schedule this assignment's lanes are taken from.
    pub fn schedule(&self) -> &Assignment {
        self.whole.as_deref().unwrap_or(self)
    }

    /// Seconds the load lasts.
    pub fn total(&self) -> f64 {
        if self.stages.is_empty() {
            self.duration
        } else {
            self.stages.iter().map(|s| s.0).sum()
        }
    }

    /// Most users the plan ever asks for.
    pub fn peak_connections(&self) -> u64 {
        self.stages
            .iter()
            .filter_map(|s| s.2)
            .fold(self.connections, u64::max)
    }

    /// Worker `index` of `count`'s part.
    pub fn share(&self, index: usize, count: usize) -> Assignment {
        let stages: Vec<crate::split::StageTarget> =
            self.stages.iter().map(|s| (s.1, s.2)).collect();
        let share = split_budget(self.connections, self.rate, &stages, count).swap_remove(index);
        Assignment {
            connections: share.connections,
            rate: share.rate,
            stages: self
                .stages
                .iter()
                .zip(share.stages)
                .map(|(s, (r, c))| (s.0, r, c))
                .collect(),
            duration: self.duration,
            lanes: self.lanes.split(index, count),
            whole: Some(self.whole.clone().unwrap_or_else(|| Arc::new(self.clone()))),
        }
    }
}
