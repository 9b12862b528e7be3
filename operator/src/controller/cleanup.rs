//! Deletion of a LoadTest (the finalizer's cleanup): stop its runners, wait (bounded) for
//! their final snapshots, log the results, mark it Stopped, remove its pods.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stampede_api::crd::{LoadTest, LoadTestStatus, Phase};
use tracing::{info, warn};

use super::context::{Ctx, Error, lock, write_status};
use super::finish::{describe, final_summary, log_json};
use super::plan::{Mode, PodView};
use super::pods::{apply_pods, pod_view};
use super::resources::{runner_selector, test_key};
use super::status::Conditions;
use super::token::ensure_token;
use super::tracking::{track, untrack};
use crate::results::{status_parts, summary_steps};

/// Deletion: stop the runners, wait (bounded) for their final snapshots, record the results,
/// remove the pods. The LoadTest goes once this returns.
pub(super) async fn cleanup(lt: &LoadTest, ctx: &Ctx) -> Result<Action, Error> {
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let key = test_key(lt);
    let old = lt.status.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let observed = pods
        .list(&ListParams::default().labels(&runner_selector(lt)))
        .await?;
    let views: Vec<PodView> = observed.items.iter().map(pod_view).collect();
    let running: BTreeSet<u32> = views
        .iter()
        .filter(|v| v.phase == "Running" && !v.deleting)
        .filter_map(|v| v.index)
        .collect();
    let uid = lt.uid().unwrap_or_default();
    let tracked = match ctx.tracked(&key).filter(|t| lock(t).uid == uid) {
        Some(t) => Some(t),
        // A replica that took over mid-test has not met these runners yet: it coordinates
        // them just long enough to stop them and collect what they measured.
        None if !old.phase.is_some_and(Phase::is_finished) && !running.is_empty() => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            match ensure_token(lt, &secrets).await {
                Ok(token) => {
                    let indices = running.iter().max().map_or(0, |m| m + 1);
                    Some(track(lt, ctx, &key, token, indices))
                }
                Err(e) => {
                    warn!(loadtest = %key, "cannot reach the runners to flush them: {e}");
                    None
                }
            }
        }
        None => None,
    };
    if let Some(tracked) = tracked {
        let (coordinator, runners, series) = {
            let t = lock(&tracked);
            (t.coordinator.clone(), t.runners, t.series.clone())
        };
        let deadline = Instant::now() + ctx.timing.flush_timeout;
        loop {
            // Repeated: a runner that (re)registers meanwhile gets its Stop too.
            coordinator.stop_all();
            let results = coordinator.results();
            let flushed = running
                .iter()
                .all(|i| results.iter().any(|(j, s)| j == i && s.finished));
            if (flushed && coordinator.all_stopped()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        untrack(ctx, &key, false);
        let summary = final_summary(
            &coordinator,
            runners,
            lock(&series).iter().cloned().collect(),
        );
        let (thresholds, totals) = status_parts(&summary);
        let note = format!("stopped by deletion: {}", describe(&totals));
        // The summary goes to the operator's log: the object that would carry it is going.
        info!(loadtest = %key, summary = %log_json(&summary), "final results flushed");
        if !old.phase.is_some_and(Phase::is_finished) {
            let mut status = LoadTestStatus {
                phase: Some(Phase::Stopped),
                totals: Some(totals),
                thresholds,
                steps: summary_steps(&summary),
                current: None,
                ..old
            };
            let mut conditions = Conditions::new(&status, lt.metadata.generation.unwrap_or(0));
            conditions.set("Progressing", false, "Deleted", &note);
            status.conditions = conditions.into_vec();
            write_status(lt, ctx, status).await?;
        }
        ctx.event(lt, EventType::Normal, "Stopped", note).await;
    }
    lock(&ctx.ended).remove(&key);
    ctx.hub.remove(&key, false);
    apply_pods(lt, ctx, &pods, &views, Mode::Stopped, None).await?;
    Ok(Action::await_change())
}
