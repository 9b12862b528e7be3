//! Status and standard conditions (pure): a condition's `lastTransitionTime` moves only when
//! its status flips, so rewriting an unchanged status is a no-op the API server ignores.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use stampede_api::crd::{CurrentStatus, LoadTestStatus, Phase, RunnersStatus, TotalsStatus};

/// A status timestamp. Kubernetes stores whole seconds: truncating here makes a rewrite of an
/// unchanged status compare equal to what was read back.
pub fn time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The conditions of a status being built.
pub struct Conditions {
    list: Vec<Condition>,
    generation: i64,
}

impl Conditions {
    pub fn new(old: &LoadTestStatus, generation: i64) -> Conditions {
        Conditions {
            list: old.conditions.clone(),
            generation,
        }
    }

    pub fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" }.to_string();
        let generation = Some(self.generation);
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = time(SystemTime::now());
                }
                c.status = status;
                c.reason = reason.into();
                c.message = message.into();
                c.observed_generation = generation;
            }
            None => self.list.push(Condition {
                type_: type_.into(),
                status,
                reason: reason.into(),
                message: message.into(),
                observed_generation: generation,
                last_transition_time: time(SystemTime::now()),
            }),
        }
    }

    pub fn into_vec(self) -> Vec<Condition> {
        self.list
    }
}

/// The status of a test that is (or was) running, with its conditions brought in line.
#[allow(clippy::too_many_arguments)]
pub fn next_status(
    old: &LoadTestStatus,
    phase: Phase,
    generation: i64,
    start: Option<SystemTime>,
    runners: RunnersStatus,
    current: Option<CurrentStatus>,
    totals: Option<TotalsStatus>,
    mut conditions: Conditions,
) -> LoadTestStatus {
    let (ready, desired) = (runners.ready, runners.desired);
    let all_in = desired > 0 && ready >= desired;
    conditions.set(
        "Ready",
        all_in,
        if all_in {
            "RunnersConnected"
        } else {
            "RunnersMissing"
        },
        &format!("{ready} of {desired} runners connected"),
    );
    let (progressing, reason) = match phase {
        Phase::Pending => (true, "CreatingRunners"),
        Phase::Initializing => (true, "Connecting"),
        Phase::Running => (true, "Running"),
        Phase::Stopped => (false, "Suspended"),
        Phase::Succeeded | Phase::Failed => (false, "PlanEnded"),
        Phase::Invalid => (false, "InvalidSpec"),
    };
    conditions.set(
        "Progressing",
        progressing,
        reason,
        &format!("phase {phase:?}"),
    );
    if !phase.is_finished() {
        conditions.set("Complete", false, reason, "the test has not ended");
        conditions.set("Failed", false, reason, "the test has not ended");
    }
    LoadTestStatus {
        phase: Some(phase),
        observed_generation: Some(generation),
        run_id: old.run_id.clone(),
        start_time: start.map(time).or_else(|| old.start_time.clone()),
        completion_time: old.completion_time.clone(),
        runners: Some(runners),
        current,
        totals: totals.or_else(|| old.totals.clone()),
        steps: old.steps.clone(),
        thresholds: old.thresholds.clone(),
        results_config_map: old.results_config_map.clone(),
        conditions: conditions.into_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let mut c = Conditions::new(&LoadTestStatus::default(), 1);
        c.set("Ready", false, "RunnersMissing", "0 of 3");
        let long_ago = time(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
        c.list[0].last_transition_time = long_ago.clone();
        c.set("Ready", false, "RunnersMissing", "1 of 3");
        assert_eq!(c.list[0].last_transition_time, long_ago);
        assert_eq!(c.list[0].message, "1 of 3");
        c.set("Ready", true, "RunnersConnected", "3 of 3");
        assert_ne!(c.list[0].last_transition_time, long_ago);
        assert_eq!(c.list.len(), 1);
    }
}
