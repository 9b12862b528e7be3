//! One reconcile of a LoadTest that exists: a finished test only lingers until its TTL; any
//! other is validated, gets its token and coordinator, takes live patches, suspend and
//! resume, has its runner pods brought in line, and gets a fresh status.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stampede_api::crd::{LoadTest, LoadTestStatus, Phase, RunnersStatus};
use tracing::info;

use super::context::{Ctx, Error, lock, write_status};
use super::finish::finish;
use super::plan::{Mode, PodView, desired_runners};
use super::pods::{apply_pods, pod_view};
use super::resources::{runner_selector, secret_name, test_key};
use super::spec_file::test_spec;
use super::status::{Conditions, next_status};
use super::token::ensure_token;
use super::tracking::{parse_start_at, track, untrack};
use super::validate::validate;
use crate::coordinator::Start;

pub(super) async fn apply(lt: &LoadTest, ctx: &Ctx) -> Result<Action, Error> {
    tracing::debug!(loadtest = %lt.name_any(), "reconcile");
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let key = test_key(lt);
    let generation = lt.metadata.generation.unwrap_or(0);
    let old = lt.status.clone().unwrap_or_default();
    let mut conditions = Conditions::new(&old, generation);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let observed = pods
        .list(&ListParams::default().labels(&runner_selector(lt)))
        .await?;
    let views: Vec<PodView> = observed.items.iter().map(pod_view).collect();

    // Finished: nothing runs again, whatever is patched; the TTL removes the pods and token,
    // never the results.
    let uid = lt.uid().unwrap_or_default();
    let ended_here = lock(&ctx.ended)
        .get(&key)
        .filter(|(u, _)| *u == uid)
        .map(|(_, at)| *at);
    if old.phase.is_some_and(Phase::is_finished) || ended_here.is_some() {
        untrack(ctx, &key, true);
        let done = old
            .completion_time
            .as_ref()
            .map(|t| SystemTime::from(t.0))
            .or(ended_here)
            .unwrap_or_else(SystemTime::now);
        let ttl = lt
            .spec
            .ttl_seconds_after_finished
            .map(|s| done + Duration::from_secs(u64::from(s)));
        let now = SystemTime::now();
        let expired = ttl.is_some_and(|t| t <= now);
        let linger_end = done + ctx.timing.end_grace;
        let mode = Mode::Finished {
            ttl_expired: expired,
            linger_over: linger_end <= now,
        };
        apply_pods(lt, ctx, &pods, &views, mode, None).await?;
        if expired {
            match secrets
                .delete(&secret_name(lt), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if old.phase.is_some_and(Phase::is_finished) {
            // A finished test ignores patches: its conditions hold for this generation too.
            let mut status = LoadTestStatus {
                observed_generation: Some(generation),
                ..old.clone()
            };
            for c in &mut status.conditions {
                c.observed_generation = Some(generation);
            }
            write_status(lt, ctx, status).await?;
        }
        // Wake for the next deadline: runners that should have exited, then the TTL.
        let next = [Some(linger_end), ttl]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        return Ok(match next {
            Some(t) => Action::requeue(
                t.duration_since(now)
                    .unwrap_or_default()
                    .max(Duration::from_millis(100)),
            ),
            None => Action::await_change(),
        });
    }

    // Validate. An invalid spec creates nothing and waits for the next change; a test that is
    // already running goes on with its last valid spec.
    let errs = validate(lt);
    let running = ctx.tracked(&key).is_some_and(|t| lock(&t).uid == uid);
    let invalid = !errs.is_empty();
    if invalid {
        let message = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if old.observed_generation != Some(generation) {
            ctx.event(lt, EventType::Warning, "InvalidSpec", message.clone())
                .await;
        }
        conditions.set("Invalid", true, "InvalidSpec", &message);
        if !running {
            let status = next_status(
                &old,
                Phase::Invalid,
                generation,
                None,
                RunnersStatus {
                    desired: 0,
                    ready: 0,
                    summary: "0/0".into(),
                },
                None,
                None,
                conditions,
            );
            write_status(lt, ctx, status).await?;
            return Ok(Action::await_change());
        }
    } else {
        conditions.set("Invalid", false, "Valid", "the spec is valid");
    }

    let runners = desired_runners(
        lt.spec.runners,
        stampede_api::peak_connections(&lt.spec),
        lt.spec.max_connections_per_runner(),
    );
    let token = ensure_token(lt, &secrets).await?;
    let tracked = track(lt, ctx, &key, token.clone(), runners);

    // Live patches, suspend and resume, and the decisions that need the coordinator.
    let mut events = Vec::new();
    let (coordinator, mode, over, runners) = {
        let mut t = lock(&tracked);
        // While the spec is invalid, the test goes on with its last valid runner count.
        let runners = if invalid { t.runners as u32 } else { runners };
        // The Secret is the truth: a rewritten one is what new runner pods will present.
        t.coordinator.set_token(token);
        if t.generation != generation && !invalid {
            let mut next = test_spec(lt, &key);
            let running = t.coordinator.spec();
            if let Ok(file) = stampede_api::parse(&running.yaml)
                && file.spec.scenario != lt.spec.scenario
            {
                events.push((
                    EventType::Warning,
                    "ScenarioChangeIgnored",
                    "spec.scenario changed while the test exists; runners keep the scenario they started with (create a new LoadTest to run another)".to_string(),
                ));
                let mut spec = lt.spec.clone();
                spec.scenario = file.spec.scenario;
                let mut patched = lt.clone();
                patched.spec = spec;
                next.yaml = test_spec(&patched, &key).yaml;
            }
            let rev = t.coordinator.update_spec(next);
            t.coordinator.set_expected(runners as usize);
            t.runners = runners as usize;
            t.generation = generation;
            info!(loadtest = %key, generation, revision = rev, "spec changed: new assignments pushed");
        }
        if lt.spec.suspend && !t.suspended {
            t.coordinator.stop_all();
            t.suspended = true;
            events.push((
                EventType::Normal,
                "Suspended",
                "traffic stopped; runner pods removed".into(),
            ));
        } else if !lt.spec.suspend && t.suspended {
            let start = match parse_start_at(lt).filter(|at| *at > SystemTime::now()) {
                Some(at) => Start::At(at),
                None => Start::AfterRelease(ctx.timing.start_delay),
            };
            t.coordinator.restart(start);
            t.suspended = false;
            t.since = Instant::now();
            events.push((
                EventType::Normal,
                "Resumed",
                "runner pods are starting again".into(),
            ));
        }
        let c = t.coordinator.clone();
        if !t.suspended && t.since.elapsed() >= ctx.timing.release_after {
            c.release();
        }
        // Validation bounds a test to a month; an instant past the clock's range is never.
        let total = Duration::try_from_secs_f64(c.spec().budget.total()).unwrap_or(Duration::MAX);
        let now = SystemTime::now();
        let after = |d: Duration| {
            c.start_time()
                .and_then(|s| s.checked_add(d))
                .is_some_and(|at| now >= at)
        };
        let ending = after(total);
        let over = !t.suspended
            && ending
            && (c.all_finished() || after(total.saturating_add(ctx.timing.end_grace)));
        let mode = if t.suspended {
            Mode::Stopped
        } else if ending {
            Mode::Ending
        } else {
            Mode::Run { runners }
        };
        (c, mode, over, runners)
    };
    for (type_, reason, note) in events {
        ctx.event(lt, type_, reason, note).await;
    }

    if over {
        return finish(lt, ctx, &tracked, conditions, generation).await;
    }
    apply_pods(lt, ctx, &pods, &views, mode, Some(&coordinator)).await?;

    let ready = coordinator.live().len() as u32;
    let figures = {
        let mut t = lock(&tracked);
        t.window.current(Instant::now(), || coordinator.merged())
    };
    let phase = if lt.spec.suspend {
        Phase::Stopped
    } else {
        match coordinator.start_time() {
            None if ready == 0 => Phase::Pending,
            None => Phase::Initializing,
            Some(s) if s > SystemTime::now() => Phase::Initializing,
            Some(_) => Phase::Running,
        }
    };
    let mut status = next_status(
        &old,
        phase,
        generation,
        coordinator.start_time(),
        RunnersStatus {
            desired: if lt.spec.suspend { 0 } else { runners },
            ready,
            summary: format!("{ready}/{}", if lt.spec.suspend { 0 } else { runners }),
        },
        (phase == Phase::Running).then_some(figures.current),
        Some(figures.totals),
        conditions,
    );
    if !figures.steps.is_empty() {
        status.steps = figures.steps;
    }
    status.run_id = Some(coordinator.run_id());
    write_status(lt, ctx, status).await?;
    Ok(if lt.spec.suspend {
        Action::await_change()
    } else {
        Action::requeue(ctx.timing.tick)
    })
}
