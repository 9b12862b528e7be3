//! Runner pods on the API server: observed as `PodView`s, then created and deleted as the
//! pure `plan` decides, with an Event for each change a user must see.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::events::EventType;
use stampede_api::crd::LoadTest;

use super::context::{Ctx, Error, is_permanent};
use super::plan::{Mode, PodView, plan_pods};
use super::resources::{self, runner_pod};
use crate::coordinator::Coordinator;

pub(super) fn pod_view(p: &Pod) -> PodView {
    PodView {
        name: p.name_any(),
        index: resources::pod_index(p),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        deleting: p.metadata.deletion_timestamp.is_some(),
        stuck: stuck(p),
    }
}

/// Waiting reasons that do not pass by themselves: the kubelet retries, the pod stays
/// Pending, and without a word from the operator the LoadTest would sit in Pending too.
const STUCK: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
];

fn stuck(p: &Pod) -> Option<String> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        STUCK.contains(&reason).then(|| match &w.message {
            Some(m) => format!("{reason}: {m}"),
            None => reason.to_string(),
        })
    })
}

/// Creates and deletes runner pods as `plan_pods` decides for `mode`; with a coordinator,
/// runners whose pods are gone leave the split first.
pub(super) async fn apply_pods(
    lt: &LoadTest,
    ctx: &Ctx,
    pods: &Api<Pod>,
    views: &[PodView],
    mode: Mode,
    coordinator: Option<&Coordinator>,
) -> Result<(), Error> {
    for v in views.iter().filter(|v| !v.deleting) {
        if let Some(why) = &v.stuck {
            // Repeats of one note are folded into a series by the event recorder.
            ctx.event(
                lt,
                EventType::Warning,
                "RunnerNotStarting",
                format!("pod {}: {why}", v.name),
            )
            .await;
        }
    }
    let live = coordinator.map(Coordinator::live).unwrap_or_default();
    let plan = plan_pods(views, mode, &live);
    if let Some(c) = coordinator {
        let evicted: Vec<u32> = plan.evict.iter().copied().filter(|i| c.evict(*i)).collect();
        if !evicted.is_empty() && matches!(mode, Mode::Run { .. }) {
            ctx.event(
                lt,
                EventType::Warning,
                "RunnerLost",
                format!("runner(s) {evicted:?} gone; their budget was re-split across the others"),
            )
            .await;
        }
    }
    for name in &plan.delete {
        match pods.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for index in &plan.create {
        let created = pods
            .create(
                &PostParams::default(),
                &runner_pod(lt, *index, &ctx.defaults),
            )
            .await;
        match created {
            Ok(_) => {}
            // Pods can stay out for good (a quota, an admission policy, a bad image name):
            // the user must see why, not only a slowing retry in the operator's log.
            Err(kube::Error::Api(s)) if is_permanent(&s) => {
                ctx.event(
                    lt,
                    EventType::Warning,
                    "RunnerPodRefused",
                    format!(
                        "runner pod {index}: {} (HTTP {}); retrying with backoff",
                        s.message, s.code
                    ),
                )
                .await;
                return Err(kube::Error::Api(s).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !plan.create.is_empty() {
        ctx.event(
            lt,
            EventType::Normal,
            "CreatedRunners",
            format!("created runner pod(s) for index {:?}", plan.create),
        )
        .await;
    }
    Ok(())
}
