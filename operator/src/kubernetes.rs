//! `stampede-operator run`: the in-cluster operator. It takes the leader Lease, and only then
//! opens the runners' gRPC endpoint, reconciles and coordinates; losing the lease ends the
//! process (exit 1) so Kubernetes restarts it as a standby, the usual client-go contract.
//! A standby keeps the runner port closed, so its readiness probe fails and the Service sends
//! runners to the leader only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use stampede_api::proto::coordinator_server::CoordinatorServer;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::controller::resources::RunnerDefaults;
use crate::controller::{self, Ctx, Timing};

use crate::hub::Hub;
use crate::leader::{Elector, LeaseConfig};
use crate::metrics::{self, Metrics};

#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub grpc_addr: SocketAddr,
    /// `/metrics` and `/healthz`, served by every replica (a standby has health to report).
    pub metrics_addr: SocketAddr,
    pub runner: RunnerDefaults,
    /// `None`: this is the only replica (no Lease).
    pub lease: Option<LeaseConfig>,
    /// This replica's name on the Events it writes (the pod name).
    pub instance: Option<String>,
    pub timing: Timing,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("lost the leader lease; exiting so a standby takes over")]
    LostLease,
    #[error("the controller stopped on its own (its watches ended); exiting to be restarted")]
    ControllerEnded,
    #[error("cannot handle SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}

/// Runs the operator with the in-cluster (or kubeconfig) client until SIGTERM or Ctrl-C.
pub async fn run(cfg: OperatorConfig) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let shutdown = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            shutdown.cancel();
        });
    }
    run_with(client, cfg, shutdown).await
}

/// Runs the operator on `client` until `shutdown` is cancelled: what `run` does, for any API
/// server (the tests' fake one included).
pub async fn run_with(
    client: Client,
    cfg: OperatorConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let hub = Hub::default();

    let metrics = Metrics::new(metrics::DEFAULT_GRACE);
    let metrics_listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.metrics_addr,
            source,
        })?;
    info!("metrics on http://{}/metrics", cfg.metrics_addr);
    tokio::spawn(metrics::serve(
        metrics_listener,
        metrics.clone(),
        shutdown.clone(),
    ));

    let elector = cfg.lease.clone().map(|l| Elector::new(client.clone(), l));
    if let Some(e) = &elector {
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
    hub.set_leading(true);
    // The runner port opens only on the leader: the Service's readiness probe (a TCP check
    // of this port) then routes runners to the one replica that coordinates.
    let listener = tokio::net::TcpListener::bind(cfg.grpc_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.grpc_addr,
            source,
        })?;
    info!("runner endpoint on {}", cfg.grpc_addr);
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            // A runner on a dead node or behind a partition shows no closed connection: HTTP/2
            // pings find it, and its share moves to the others.
            .http2_keepalive_interval(Some(crate::coordinator::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(crate::coordinator::KEEPALIVE_TIMEOUT))
            .add_service(CoordinatorServer::new(hub.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut ctx = Ctx::new(client, hub.clone(), cfg.runner, cfg.timing);
    ctx.set_instance(cfg.instance);
    ctx.metrics = metrics;
    let ctx = Arc::new(ctx);
    let stop = shutdown.clone();
    let mut controller = tokio::spawn(controller::run(ctx, async move { stop.cancelled().await }));
    let lost = async {
        match &elector {
            Some(e) => e.hold().await,
            None => std::future::pending().await,
        }
    };
    let (result, ended) = tokio::select! {
        _ = &mut controller => (if shutdown.is_cancelled() {
            Ok(())
        } else {
            // Not asked to stop (a panic, or watches that gave up): a process that went on
            // would hold the lease and coordinate nothing.
            hub.set_leading(false);
            Err(RunError::ControllerEnded)
        }, true),
        _ = lost => {
            // Another replica may lead any moment now: stop coordinating at once.
            hub.set_leading(false);
            grpc.abort();
            controller.abort();
            shutdown.cancel();
            (Err(RunError::LostLease), false)
        }
    };
    // Let in-flight reconciles (finalizers flushing results) end before the lease goes.
    if !ended
        && tokio::time::timeout(Duration::from_secs(20), controller)
            .await
            .is_err()
    {
        warn!("controller did not stop within 20 s");
    }
    if let (Some(e), Ok(())) = (&elector, &result) {
        e.release().await;
    }
    grpc.abort();
    result
}
