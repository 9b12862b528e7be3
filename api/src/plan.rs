//! The load plan of one worker: rate and connections as functions of time since the start,
//! and the exact inverse the pacer needs ("when does the k-th iteration fire?").
//! Pure: no clocks, no I/O.

use crate::assignment::Assignment;

/// One linear piece of the plan.
#[derive(Clone, Debug, PartialEq)]
struct Segment {
    start: f64,
    len: f64,
    rate0: f64,
    rate1: f64,
    conns0: f64,
    conns1: f64,
    /// Iterations scheduled before this segment starts.
    count0: f64,
}

impl Segment {
    fn count_at(&self, t: f64) -> f64 {
        let x = (t - self.start).clamp(0.0, self.len);
        let slope = if self.len > 0.0 {
            (self.rate1 - self.rate0) / self.len
        } else {
            0.0
        };
        self.count0 + self.rate0 * x + 0.5 * slope * x * x
    }

    fn count_end(&self) -> f64 {
        self.count_at(self.start + self.len)
    }

    /// The time at which the running count reaches `k` (within this segment).
    fn time_of(&self, k: f64) -> f64 {
        let need = (k - self.count0).max(0.0);
        let slope = if self.len > 0.0 {
            (self.rate1 - self.rate0) / self.len
        } else {
            0.0
        };
        let x = if slope.abs() < 1e-12 {
            if self.rate0 > 0.0 {
                need / self.rate0
            } else {
                self.len
            }
        } else {
            // Solve slope/2·x² + rate0·x − need = 0 for the root in [0, len].
            let disc = (self.rate0 * self.rate0 + 2.0 * slope * need).max(0.0);
            (disc.sqrt() - self.rate0) / slope
        };
        self.start + x.clamp(0.0, self.len)
    }
}

/// Rate and connections over time for one worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    segments: Vec<Segment>,
    open: bool,
}

/// Iterations/s `a` schedules on average over its length; `None` in the closed model.
pub fn planned_rate(a: &Assignment) -> Option<f64> {
    a.rate?;
    let plan = Plan::new(&a.share(0, 1));
    let total = plan.total();
    Some(if total > 0.0 {
        plan.count_at(total) / total
    } else {
        0.0
    })
}

impl Plan {
    /// Without stages: constant rate and connections for `duration`. With stages: they start
    /// at `rate` and `connections`, and each stage ramps linearly from the previous values to
    /// its own.
    pub fn new(input: &Assignment) -> Plan {
        let open = input.rate.is_some();
        let mut segments = Vec::new();
        if input.stages.is_empty() {
            let r = input.rate.unwrap_or(0.0);
            let c = input.connections as f64;
            segments.push(Segment {
                start: 0.0,
                len: input.duration.max(0.0),
                rate0: r,
                rate1: r,
                conns0: c,
                conns1: c,
                count0: 0.0,
            });
        } else {
            let mut rate = input.rate.unwrap_or(0.0);
            let mut conns = input.connections as f64;
            let (mut t, mut count) = (0.0, 0.0);
            for &(len, r, c) in &input.stages {
                let seg = Segment {
                    start: t,
                    len,
                    rate0: rate,
                    rate1: r.unwrap_or(rate),
                    conns0: conns,
                    conns1: c.map(|c| c as f64).unwrap_or(conns),
                    count0: count,
                };
                t += len;
                count = seg.count_end();
                rate = seg.rate1;
                conns = seg.conns1;
                segments.push(seg);
            }
        }
        Plan { segments, open }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Seconds from the start to the end of the plan.
    pub fn total(&self) -> f64 {
        self.segments.last().map(|s| s.start + s.len).unwrap_or(0.0)
    }

    fn segment_at(&self, t: f64) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| t < s.start + s.len)
            .or(self.segments.last())
    }

    pub fn rate_at(&self, t: f64) -> f64 {
        match self.segment_at(t) {
            Some(s) if self.open && s.len > 0.0 => {
                let x = (t - s.start).clamp(0.0, s.len) / s.len;
                s.rate0 + (s.rate1 - s.rate0) * x
            }
            Some(s) if self.open => s.rate1,
            _ => 0.0,
        }
    }

    pub fn connections_at(&self, t: f64) -> u64 {
        match self.segment_at(t) {
            Some(s) if s.len > 0.0 => {
                let x = (t - s.start).clamp(0.0, s.len) / s.len;
                (s.conns0 + (s.conns1 - s.conns0) * x).round() as u64
            }
            Some(s) => s.conns1.round() as u64,
            None => 0,
        }
    }

    /// Iterations scheduled in `[0, t]` (a real number; iteration k fires when it passes k).
    pub fn count_at(&self, t: f64) -> f64 {
        match self.segment_at(t) {
            Some(s) if self.open => s.count_at(t),
            _ => 0.0,
        }
    }

    /// The instant (seconds from the start) at which the running count reaches `k`, or
    /// `None` when the plan ends first.
    pub fn time_of(&self, k: f64) -> Option<f64> {
        if !self.open {
            return None;
        }
        let seg = self.segments.iter().find(|s| s.count_end() >= k)?;
        let t = seg.time_of(k);
        (t < self.total()).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(rate: f64, secs: f64) -> Plan {
        Plan::new(&Assignment {
            connections: 10,
            rate: Some(rate),
            stages: vec![],
            duration: secs,
            lanes: Default::default(),
            whole: None,
        })
    }

    #[test]
    fn constant_rate_fires_at_absolute_instants() {
        let p = constant(2000.0, 5.0);
        assert_eq!(p.time_of(1.0), Some(0.0005));
        assert!((p.time_of(1000.0).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            p.time_of(10_000.0),
            None,
            "the 10,000th iteration would fire at the end"
        );
        assert!((p.count_at(5.0) - 10_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_inverts_exactly() {
        let p = Plan::new(&Assignment {
            connections: 0,
            rate: Some(0.0),
            stages: vec![(10.0, Some(100.0), Some(50)), (10.0, Some(300.0), None)],
            duration: 0.0,
            lanes: Default::default(),
            whole: None,
        });
        assert_eq!(p.total(), 20.0);
        // 0→100/s over 10 s schedules 500 iterations, then 100→300/s over 10 s schedules 2,000.
        assert!((p.count_at(10.0) - 500.0).abs() < 1e-9);
        assert!((p.count_at(20.0) - 2500.0).abs() < 1e-9);
        for k in [1.0, 77.0, 500.0, 1234.5, 2499.0] {
            let t = p.time_of(k).unwrap();
            assert!((p.count_at(t) - k).abs() < 1e-6, "k={k} t={t}");
        }
        assert_eq!(p.connections_at(5.0), 25);
        assert_eq!(p.connections_at(15.0), 50);
        assert!((p.rate_at(15.0) - 200.0).abs() < 1e-9);
    }

    #[test]
    fn the_closed_model_schedules_nothing() {
        let p = Plan::new(&Assignment {
            connections: 3,
            rate: None,
            stages: vec![],
            duration: 1.0,
            lanes: Default::default(),
            whole: None,
        });
        assert_eq!(p.time_of(1.0), None);
        assert_eq!(p.connections_at(0.5), 3);
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    #[test]
    fn stages_start_from_the_spec_values() {
        let p = Plan::new(&Assignment {
            connections: 10,
            rate: Some(200.0),
            stages: vec![(2.0, Some(0.0), Some(0))],
            duration: 0.0,
            lanes: Default::default(),
            whole: None,
        });
        assert_eq!(p.connections_at(0.0), 10);
        assert!((p.rate_at(0.0) - 200.0).abs() < 1e-9);
        assert!(
            (p.count_at(2.0) - 200.0).abs() < 1e-9,
            "a ramp down from 200/s over 2 s"
        );
        assert_eq!(p.connections_at(1.0), 5);
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;
    use crate::assignment::Lanes;

    /// Iterations a part fires: its lane's numbers that the whole schedule holds.
    fn fired(a: &Assignment) -> u64 {
        let plan = Plan::new(a.schedule());
        let mut k = a.lanes.index;
        let mut n = 0;
        while plan.time_of(k as f64).is_some() {
            n += 1;
            k += a.lanes.count;
        }
        n
    }

    #[test]
    fn runners_and_their_workers_together_fire_exactly_the_planned_count() {
        let whole = Assignment {
            connections: 10,
            rate: Some(1000.0),
            stages: vec![],
            duration: 5.0,
            lanes: Lanes::default(),
            whole: None,
        };
        for (runners, workers) in [(1, 1), (1, 2), (3, 1), (3, 2), (7, 3)] {
            let mut total = 0;
            for r in 0..runners {
                // A runner's share carries its lanes, as the coordinator's assignment does.
                let runner = whole.share(r, runners);
                total += (0..workers)
                    .map(|w| fired(&runner.share(w, workers)))
                    .sum::<u64>();
            }
            assert_eq!(total, 5000, "{runners} runners × {workers} workers");
        }
    }
}
