//! What the target has seen, counted as it serves: tests compare it with what the runner
//! claims.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// How many WebSocket messages the target remembers for tests (`TargetStats::ws_log`).
const WS_LOG_LIMIT: usize = 100_000;

/// What the target has seen.
#[derive(Debug, Default)]
pub struct TargetStats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub(crate) orders: AtomicU64,
    /// WebSocket connections ever opened, and open now.
    pub ws_connections: AtomicU64,
    pub ws_open: AtomicU64,
    pub ws_messages: AtomicU64,
    /// The first WebSocket messages received: (connection, arrival, first 64 bytes).
    pub ws_log: Mutex<Vec<(u64, Instant, Vec<u8>)>>,
    pub tcp_connections: AtomicU64,
    pub tcp_bytes: AtomicU64,
    pub udp_datagrams: AtomicU64,
}

impl TargetStats {
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A WebSocket connection opened; its id.
    pub(crate) fn ws_opened(&self) -> u64 {
        self.ws_open.fetch_add(1, Ordering::Relaxed);
        self.ws_connections.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn ws_closed(&self) {
        self.ws_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn ws_message(&self, conn: u64, payload: &[u8]) {
        self.ws_messages.fetch_add(1, Ordering::Relaxed);
        let mut log = self.ws_log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < WS_LOG_LIMIT {
            log.push((
                conn,
                Instant::now(),
                payload[..payload.len().min(64)].to_vec(),
            ));
        }
    }
}
