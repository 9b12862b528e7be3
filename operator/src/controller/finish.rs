//! The end of a run: the merged summary and its verdict, the final status and Event, and the
//! results ConfigMap (bounded to what Kubernetes stores; refused ones are reported, not
//! retried forever).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stampede_api::crd::{LoadTest, Phase, RunnersStatus, TotalsStatus};
use stampede_api::results::{Point, Summary};
use tracing::info;

use super::context::{Ctx, Error, Tracked, is_permanent, lock, write_status};
use super::resources::{MANAGER, results_config_map, results_name, test_key};
use super::status::{self, Conditions, next_status};
use super::tracking::untrack;
use crate::coordinator::Coordinator;
use crate::results::{status_parts, summarize, summary_steps};

/// The merged summary of everything a test's runners reported, its thresholds evaluated.
pub(super) fn final_summary(
    coordinator: &Coordinator,
    runners: usize,
    series: Vec<Point>,
) -> Summary {
    let start = coordinator.start_time().unwrap_or_else(SystemTime::now);
    let elapsed = SystemTime::now()
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64();
    summarize(
        &coordinator.spec(),
        &coordinator.results(),
        series,
        start,
        elapsed,
        runners,
        None,
    )
}

/// `N iterations, N requests, N errors, N dropped`: how events and conditions quote totals.
pub(super) fn describe(t: &TotalsStatus) -> String {
    format!(
        "{} iterations, {} requests, {} errors, {} dropped",
        t.iterations, t.requests, t.errors, t.dropped
    )
}

/// The plan has ended: verdict, final status, runners told to stop.
pub(super) async fn finish(
    lt: &LoadTest,
    ctx: &Ctx,
    tracked: &Arc<Mutex<Tracked>>,
    mut conditions: Conditions,
    generation: i64,
) -> Result<Action, Error> {
    let (coordinator, runners, series) = {
        let t = lock(tracked);
        (t.coordinator.clone(), t.runners, t.series.clone())
    };
    coordinator.stop_all();
    let start = coordinator.start_time().unwrap_or_else(SystemTime::now);
    let summary = final_summary(
        &coordinator,
        runners,
        lock(&series).iter().cloned().collect(),
    );
    let saved = save_summary(lt, ctx, &summary).await?;
    let (thresholds, totals) = status_parts(&summary);
    let phase = if summary.passed {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    let note = format!(
        "{}; thresholds {}",
        describe(&totals),
        if summary.passed { "passed" } else { "FAILED" }
    );
    info!(loadtest = %summary.name, summary = %log_json(&summary), "test finished");
    conditions.set("Complete", true, "PlanEnded", &note);
    conditions.set(
        "Failed",
        !summary.passed,
        if summary.passed {
            "ThresholdsPassed"
        } else {
            "ThresholdsFailed"
        },
        &note,
    );
    let old = lt.status.clone().unwrap_or_default();
    let mut status = next_status(
        &old,
        phase,
        generation,
        Some(start),
        RunnersStatus {
            desired: 0,
            ready: 0,
            summary: "0/0".into(),
        },
        None,
        Some(totals),
        conditions,
    );
    status.thresholds = thresholds;
    status.run_id = Some(summary.run_id.clone()).filter(|r| !r.is_empty());
    status.steps = summary_steps(&summary);
    status.results_config_map = saved.then(|| results_name(lt));
    status.completion_time = Some(status::time(SystemTime::now()));
    write_status(lt, ctx, status).await?;
    ctx.event(
        lt,
        if summary.passed {
            EventType::Normal
        } else {
            EventType::Warning
        },
        if summary.passed {
            "Succeeded"
        } else {
            "ThresholdsFailed"
        },
        note,
    )
    .await;
    let key = test_key(lt);
    lock(&ctx.ended).insert(
        key.clone(),
        (lt.uid().unwrap_or_default(), SystemTime::now()),
    );
    untrack(ctx, &key, true);
    // Runners exit on Stop; the finished branch deletes any still running after the grace.
    Ok(Action::requeue(ctx.timing.end_grace))
}

/// What the summary may take of its ConfigMap: Kubernetes refuses objects over 1 MiB, and
/// the object's metadata needs some of it.
const MAX_SUMMARY_BYTES: usize = 900 * 1024;

/// Keeps the full summary in a ConfigMap owned by the LoadTest (replacing an earlier one, as
/// after a resumed test). A long test's series is coarsened to fit; true when it was saved.
/// A summary that cannot be stored at all (thousands of steps) or that the API server
/// refuses outright must not hold back the verdict: that is an event, not a retry forever.
async fn save_summary(lt: &LoadTest, ctx: &Ctx, summary: &Summary) -> Result<bool, Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &lt.namespace().unwrap_or_default());
    let refused = |why: String| async move {
        ctx.event(
            lt,
            EventType::Warning,
            "ResultsNotSaved",
            format!("the results ConfigMap was not written ({why}); the summary is in the operator's log"),
        )
        .await;
        Ok(false)
    };
    let Some(json) = summary.to_json_within(MAX_SUMMARY_BYTES) else {
        return refused(format!(
            "the summary needs more than {MAX_SUMMARY_BYTES} bytes"
        ))
        .await;
    };
    let cm = results_config_map(lt, String::from_utf8(json).expect("JSON is UTF-8"));
    match api
        .patch(
            &results_name(lt),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if is_permanent(&s) => {
            refused(format!("{} {}", s.code, s.message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The summary for a log line: bounded like the ConfigMap, the series dropped if even that
/// does not fit.
pub(super) fn log_json(summary: &Summary) -> String {
    let json = summary
        .to_json_within(MAX_SUMMARY_BYTES)
        .unwrap_or_else(|| {
            Summary {
                series: Vec::new(),
                ..summary.clone()
            }
            .to_json()
        });
    String::from_utf8(json).expect("JSON is UTF-8")
}
