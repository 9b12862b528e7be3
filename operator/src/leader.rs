//! Leader election over a `coordination.k8s.io` Lease, so that of several operator replicas
//! exactly one coordinates (runners must agree on one split). kube 5 ships no elector and the
//! crates that do pin older kube versions, so this is client-go's algorithm in a few lines:
//! take the Lease when it is free or expired, renew it well inside its duration, and rely on
//! resourceVersion preconditions (409 Conflict) so two replicas can never both win a round.
//! As in client-go, a lease counts as expired by *this* replica's clock: `duration` after the
//! record was last seen to change, never by comparing another node's timestamp; and a holder
//! gives up after a renew deadline shorter than the lease, so it has stopped before anyone
//! else may start.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews and a standby retries.
    pub retry: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The lease record as last read (holder, renew time, transitions) and when, locally.
    observed: Mutex<Option<(String, tokio::time::Instant)>>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: Mutex::new(None),
        }
    }

    fn spec(&self, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.duration.as_secs().max(1) as i32),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the lease; true when this replica holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.cfg.identity;
        let record = format!(
            "{holder}|{:?}|{:?}",
            spec.renew_time.as_ref().map(|t| t.0),
            spec.lease_transitions
        );
        let lasts = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let expired = {
            let mut seen = self.observed.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            match seen.as_ref() {
                Some((r, _)) if *r == record => {}
                _ => *seen = Some((record, now)),
            }
            seen.as_ref().is_some_and(|(_, at)| now >= *at + lasts)
        };
        if !mine && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let mut next = self.spec(transitions);
        if mine {
            next.acquire_time = spec.acquire_time;
        }
        lease.spec = Some(next);
        // `replace` carries the resourceVersion we read: a replica that wrote in between
        // makes this a 409, and only one of us holds the lease.
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(identity = %self.cfg.identity, lease = %self.cfg.name, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!("lease {}: {e}", self.cfg.name),
            }
            tokio::time::sleep(self.cfg.retry).await;
        }
    }

    /// Renews the lease until it is lost (another replica took it, or no renewal succeeded
    /// for two thirds of the lease, so this replica stops before a standby may start);
    /// returns then.
    pub async fn hold(&self) {
        let deadline = self.cfg.duration * 2 / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry).await;
            match tokio::time::timeout(self.cfg.retry, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    warn!(identity = %self.cfg.identity, "lost the lease to another replica");
                    return;
                }
                Ok(Err(e)) => warn!("renewing lease {}: {e}", self.cfg.name),
                Err(_) => warn!(
                    "renewing lease {}: no answer in {:?}",
                    self.cfg.name, self.cfg.retry
                ),
            }
            if last_ok.elapsed() >= deadline {
                warn!(identity = %self.cfg.identity, "could not renew the lease in time; stepping down");
                return;
            }
        }
    }

    /// Gives the lease up at shutdown so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.cfg.identity)
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            let _ = self
                .api
                .replace(&lease.name_any(), &PostParams::default(), &lease)
                .await;
        }
    }
}
