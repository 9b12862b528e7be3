//! An assignment: a budget (connections, rate, stages, duration) for a whole test, a runner
//! or one worker thread. The engine takes a new one at any time; workers split it among
//! themselves with the same budget split the operator uses across runners.

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
        }
    }

    /// Seconds the load lasts.
    pub fn total(&self) -> f64 {
        if self.stages.is_empty() {
            self.duration
        } else {
            self.stages.iter().map(|s| s.0).sum()
        }
    }

    /// Iterations/s the plan schedules on average over its length (open model).
    pub fn planned_rate(&self) -> Option<f64> {
        self.rate?;
        let plan = crate::plan::Plan::new(&self.share(0, 1));
        let total = plan.total();
        Some(if total > 0.0 {
            plan.count_at(total) / total
        } else {
            0.0
        })
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
        }
    }
}
