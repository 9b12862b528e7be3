//! Running a prepared test in-process: start the engine, feed its reports to the collector,
//! print (or hand over) each second, and build the summary and verdict at the end.

use tokio::time::Instant;

use crate::assignment::Assignment;
use crate::engine::{Engine, EngineOptions};
use crate::load::Prepared;
use crate::results::{Collector, Point, RunInfo, Summary};

/// A running test.
pub struct Run {
    engine: Engine,
    collector: Collector,
    prepared: Prepared,
    flushed: bool,
    /// Why this runner may not open all its connections (the open-file limit), to show.
    pub fd_warning: Option<String>,
}

impl Run {
    pub fn start(prepared: Prepared, mut opts: EngineOptions) -> std::io::Result<Run> {
        opts.start_at = opts.start_at.or(prepared.start_at);
        let fd_warning = file_limit_warning(&prepared.assignment);
        let engine = Engine::start(prepared.shared.clone(), prepared.assignment.clone(), opts)?;
        let collector = Collector::new(
            prepared.shared.scenario.step_names.len(),
            engine.workers,
            prepared.assignment.rate.is_some(),
        );
        Ok(Run {
            engine,
            collector,
            prepared,
            flushed: false,
            fd_warning,
        })
    }

    /// Changes the budget while running; a warning when the open-file limit cannot hold it.
    pub fn update(&self, a: Assignment) -> Result<Option<String>, crate::engine::UpdateError> {
        let warning = file_limit_warning(&a);
        self.engine.update(a)?;
        Ok(warning)
    }

    pub fn assignment(&self) -> Assignment {
        (*self.engine.assignment()).clone()
    }

    pub fn stop(&self) {
        self.engine.stop();
    }

    pub fn stop_handle(&self) -> crate::engine::StopHandle {
        self.engine.stop_handle()
    }

    /// The instant the plan starts, once known.
    pub fn t0(&self) -> Option<Instant> {
        self.engine.t0()
    }

    /// Waits for the next measurements: the seconds completed since the last call, or `None`
    /// once every worker has finished and everything is flushed.
    pub async fn step(&mut self) -> Option<Vec<Point>> {
        if self.flushed {
            return None;
        }
        loop {
            match self.engine.next_report().await {
                Some(r) => {
                    let points = self.collector.add(r);
                    if !points.is_empty() {
                        return Some(points);
                    }
                }
                None => {
                    self.flushed = true;
                    return Some(self.collector.finish());
                }
            }
        }
    }

    /// Everything measured so far, cumulative.
    pub fn totals(&self) -> &crate::stats::Delta {
        &self.collector.totals
    }

    /// Step names, indexing `totals().steps`.
    pub fn step_names(&self) -> &[String] {
        &self.prepared.shared.scenario.step_names
    }

    /// Runs to the end, calling `on_point` for every completed second, and returns the
    /// summary with the thresholds evaluated.
    pub async fn finish(mut self, mut on_point: impl FnMut(&Point)) -> Summary {
        while let Some(points) = self.step().await {
            for p in &points {
                on_point(p);
            }
        }
        self.summarize()
    }

    /// The summary of a run whose `step` has returned `None`.
    pub fn summarize(self) -> Summary {
        let a = self.engine.assignment();
        let elapsed = self.engine.started.elapsed().as_secs_f64();
        let t0 = self.engine.t0().unwrap_or(self.engine.started);
        let t0_wall = self.engine.started_wall + t0.saturating_duration_since(self.engine.started);
        // A run stopped early is measured over the time it carried load: up to the stop, not
        // through the drain after it (a Ctrl-C at 2.5 s read 8.8 s with the drain, and every
        // rate came out a third of what it was).
        let end = self
            .engine
            .stop_handle()
            .stopped_at()
            .unwrap_or_else(Instant::now);
        let ran = end.saturating_duration_since(t0).as_secs_f64();
        let duration = a.total().min(ran);
        let info = RunInfo {
            name: &self.prepared.name,
            run_id: &self.prepared.run_id,
            step_names: &self.prepared.shared.scenario.step_names,
            start_time: t0_wall,
            duration,
            elapsed,
            target_rate: crate::plan::planned_rate(&a),
            // The most users the plan asks for: a ramp from 0 is not a test of 0 users.
            connections: a.peak_connections(),
        };
        let mut summary = Summary::build(&info, &self.collector);
        crate::verdict::apply(&mut summary, &self.prepared.thresholds);
        self.engine.join();
        summary
    }
}

/// Raises the open-file limit for an assignment's peak users; what to change if it cannot.
fn file_limit_warning(a: &Assignment) -> Option<String> {
    crate::protocol::net::raise_nofile(a.peak_connections() + crate::protocol::net::SPARE_FILES)
        .err()
}
