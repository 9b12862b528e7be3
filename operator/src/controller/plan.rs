//! The pure heart of a reconcile: from what exists (runner pods) and what the test needs,
//! decide which pods to create and delete and which runners to drop from the split now.
//! No I/O, so every rule below has a unit test.

use std::collections::BTreeSet;

/// A runner pod as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub name: String,
    /// From the pod's index label; `None` for a pod someone else labelled.
    pub index: Option<u32>,
    /// The pod's `status.phase`: Pending, Running, Succeeded, Failed or Unknown.
    pub phase: String,
    /// It has a deletionTimestamp: it is going, whatever its phase says.
    pub deleting: bool,
    /// Why its runner cannot start while the kubelet keeps trying (`reason: message` of a
    /// container stuck waiting: a Secret or key a `…From` names is missing, an image that
    /// cannot be pulled …).
    pub stuck: Option<String>,
}

/// What the test needs from its pods now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Traffic should flow with this many runners.
    Run { runners: u32 },
    /// The plan has ended: runners finish on their own; nothing is replaced.
    Ending,
    /// `spec.suspend`, or the LoadTest is being deleted: no runner may run.
    Stopped,
    /// Finished; exited pods stay (their logs) until the TTL, then go. A runner still running
    /// once `linger_over` (it missed its Stop) is deleted.
    Finished {
        ttl_expired: bool,
        linger_over: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodPlan {
    /// Runner indices to create a pod for.
    pub create: Vec<u32>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Runner indices whose share must go to the others now.
    pub evict: Vec<u32>,
}

/// Runners to start: `spec.runners`, else enough for `maxConnections` each, else one.
pub fn desired_runners(runners: Option<u32>, peak_connections: u32, max: Option<u32>) -> u32 {
    runners
        .or_else(|| max.map(|m| peak_connections.div_ceil(m.max(1))))
        .unwrap_or(1)
        .max(1)
}

/// `live`: runner indices connected to the coordinator now. One whose pod is gone (deleted
/// outright, or never seen) is evicted too, so its share moves at once.
pub fn plan_pods(pods: &[PodView], mode: Mode, live: &[u32]) -> PodPlan {
    let exited = |p: &PodView| p.phase == "Failed" || p.phase == "Succeeded";
    let mut plan = PodPlan::default();
    let mut evict = BTreeSet::new();
    let mut delete = |p: &PodView, evict: &mut BTreeSet<u32>| {
        if !p.deleting {
            plan.delete.push(p.name.clone());
        }
        evict.extend(p.index);
    };
    match mode {
        Mode::Run { runners } => {
            let mut covered = BTreeSet::new();
            // Of two pods for one index, the Running one keeps it.
            let mut ordered: Vec<&PodView> = pods.iter().collect();
            ordered.sort_by_key(|p| p.phase != "Running");
            for p in ordered {
                match p.index {
                    _ if p.deleting => {
                        evict.extend(p.index);
                    }
                    Some(i) if i < runners && !exited(p) && covered.insert(i) => {}
                    // Unwanted index, a second pod for one index, or a runner that exited early.
                    _ => delete(p, &mut evict),
                }
            }
            evict.extend(live.iter().copied());
            // Only runners without a healthy pod lose their share.
            evict.retain(|i| !covered.contains(i));
            plan.create = (0..runners).filter(|i| !covered.contains(i)).collect();
        }
        Mode::Ending => {}
        Mode::Stopped
        | Mode::Finished {
            ttl_expired: true, ..
        } => {
            for p in pods {
                delete(p, &mut evict);
            }
            evict.extend(live.iter().copied());
        }
        Mode::Finished {
            ttl_expired: false,
            linger_over,
        } => {
            for p in pods.iter().filter(|p| linger_over && !exited(p)) {
                delete(p, &mut evict);
            }
        }
    }
    plan.evict = evict.into_iter().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, index: u32, phase: &str) -> PodView {
        PodView {
            name: name.into(),
            index: Some(index),
            phase: phase.into(),
            deleting: false,
            stuck: None,
        }
    }

    #[test]
    fn missing_indices_are_created() {
        let p = plan_pods(&[pod("a", 1, "Running")], Mode::Run { runners: 3 }, &[]);
        assert_eq!(p.create, [0, 2]);
        assert!(p.delete.is_empty() && p.evict.is_empty());
    }

    #[test]
    fn scaling_down_deletes_the_highest_indices_and_evicts_them() {
        let pods: Vec<_> = (0..5)
            .map(|i| pod(&format!("p{i}"), i, "Running"))
            .collect();
        let p = plan_pods(&pods, Mode::Run { runners: 2 }, &[]);
        assert_eq!(p.delete, ["p2", "p3", "p4"]);
        assert_eq!(p.evict, [2, 3, 4]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn a_failed_or_terminating_runner_is_evicted_and_replaced() {
        let mut going = pod("b", 1, "Running");
        going.deleting = true;
        let p = plan_pods(
            &[pod("a", 0, "Failed"), going, pod("c", 2, "Running")],
            Mode::Run { runners: 3 },
            &[],
        );
        assert_eq!(p.delete, ["a"]);
        assert_eq!(p.evict, [0, 1]);
        assert_eq!(p.create, [0, 1]);
    }

    #[test]
    fn a_terminating_pod_whose_replacement_runs_is_not_evicted() {
        let mut old = pod("old", 0, "Running");
        old.deleting = true;
        let p = plan_pods(
            &[old, pod("new", 0, "Running")],
            Mode::Run { runners: 1 },
            &[],
        );
        assert_eq!(p, PodPlan::default());
    }

    #[test]
    fn a_connected_runner_whose_pod_vanished_is_evicted() {
        let p = plan_pods(&[pod("a", 0, "Running")], Mode::Run { runners: 2 }, &[0, 1]);
        assert_eq!(p.evict, [1]);
        assert_eq!(p.create, [1]);
    }

    #[test]
    fn a_duplicate_pod_for_one_index_is_deleted() {
        let p = plan_pods(
            &[pod("a", 0, "Running"), pod("b", 0, "Pending")],
            Mode::Run { runners: 1 },
            &[0],
        );
        assert_eq!(p.delete, ["b"]);
        assert!(p.evict.is_empty(), "index 0 still runs in pod a");
    }

    #[test]
    fn stopping_deletes_everything_and_ending_touches_nothing() {
        let pods = [pod("a", 0, "Running"), pod("b", 1, "Succeeded")];
        assert_eq!(plan_pods(&pods, Mode::Ending, &[]), PodPlan::default());
        assert_eq!(
            plan_pods(
                &pods,
                Mode::Finished {
                    ttl_expired: false,
                    linger_over: false
                },
                &[]
            ),
            PodPlan::default()
        );
        let p = plan_pods(&pods, Mode::Stopped, &[]);
        assert_eq!(p.delete, ["a", "b"]);
        assert_eq!(
            plan_pods(
                &pods,
                Mode::Finished {
                    ttl_expired: true,
                    linger_over: true
                },
                &[]
            )
            .delete,
            ["a", "b"]
        );
    }

    #[test]
    fn a_runner_still_running_after_the_end_is_deleted_once_it_had_time_to_stop() {
        let pods = [pod("done", 0, "Succeeded"), pod("late", 1, "Running")];
        let finished = |linger_over| Mode::Finished {
            ttl_expired: false,
            linger_over,
        };
        assert_eq!(plan_pods(&pods, finished(false), &[]), PodPlan::default());
        assert_eq!(plan_pods(&pods, finished(true), &[]).delete, ["late"]);
    }

    #[test]
    fn of_two_pods_for_one_index_the_running_one_stays() {
        let p = plan_pods(
            &[pod("a", 0, "Pending"), pod("b", 0, "Running")],
            Mode::Run { runners: 1 },
            &[0],
        );
        assert_eq!(p.delete, ["a"]);
        assert!(p.evict.is_empty());
    }

    #[test]
    fn runners_default_from_max_connections() {
        assert_eq!(desired_runners(Some(4), 100, Some(10)), 4);
        assert_eq!(desired_runners(None, 25_000, Some(10_000)), 3);
        assert_eq!(desired_runners(None, 10_000, Some(10_000)), 1);
        assert_eq!(desired_runners(None, 500, None), 1);
    }
}
