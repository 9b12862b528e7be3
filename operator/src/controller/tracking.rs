//! The tests this replica coordinates: a `Tracked` coordinator per LoadTest, started on first
//! sight (or on a takeover, keeping the runners' timeline) and dropped when the test ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use kube::ResourceExt;
use stampede_api::crd::LoadTest;

use super::context::{Ctx, Tracked, lock};
use super::spec_file::test_spec;
use crate::coordinator::{Coordinator, Start};
use crate::results::{Window, record_series};

pub(super) fn parse_start_at(lt: &LoadTest) -> Option<SystemTime> {
    lt.spec
        .start_at
        .as_deref()
        .and_then(|s| stampede_api::instant::parse_rfc3339(s).ok())
}

/// The running test for this LoadTest, created (or replaced, for a new object of the same
/// name) on first sight.
pub(super) fn track(
    lt: &LoadTest,
    ctx: &Ctx,
    key: &str,
    token: String,
    runners: u32,
) -> Arc<Mutex<Tracked>> {
    let uid = lt.uid().unwrap_or_default();
    if let Some(t) = ctx.tracked(key)
        && lock(&t).uid == uid
    {
        return t;
    }
    let status = lt.status.clone().unwrap_or_default();
    // After an operator restart mid-run the runners keep their timeline; so does the status.
    let start = match (parse_start_at(lt), status.start_time.as_ref()) {
        (Some(at), _) => Start::At(at),
        (None, Some(t)) => Start::At(SystemTime::from(t.0)),
        (None, None) => Start::AfterRelease(ctx.timing.start_delay),
    };
    let coordinator = Coordinator::new(test_spec(lt, key), token, start, runners as usize);
    ctx.hub.insert(key.to_string(), coordinator.clone());
    ctx.metrics.track(
        &lt.namespace().unwrap_or_default(),
        &lt.name_any(),
        coordinator.clone(),
    );
    let series = Arc::new(Mutex::new(VecDeque::new()));
    let taken_over = status.start_time.is_some();
    tokio::spawn(record_series(
        coordinator.clone(),
        Arc::downgrade(&series),
        taken_over,
    ));
    let t = Arc::new(Mutex::new(Tracked {
        uid,
        coordinator,
        generation: lt.metadata.generation.unwrap_or(0),
        since: Instant::now(),
        suspended: false,
        window: Window::default(),
        series: series.clone(),
        runners: runners as usize,
    }));
    lock(&ctx.tracked).insert(key.to_string(), t.clone());
    t
}

pub(super) fn untrack(ctx: &Ctx, key: &str, ended: bool) -> Option<Arc<Mutex<Tracked>>> {
    ctx.hub.remove(key, ended);
    ctx.metrics.ended(key);
    lock(&ctx.tracked).remove(key)
}
