//! The target's echo ports: TCP (plain, or TLS for clients that ask for no ALPN protocol)
//! sends back every byte; UDP sends back every datagram to its sender.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::stats::TargetStats;

pub async fn tcp(listener: TcpListener, stats: Arc<TargetStats>, stop: CancellationToken) {
    while let Some(stream) = super::accept(&listener, &stop).await {
        tokio::spawn(tcp_conn(stream, stats.clone(), stop.clone()));
    }
}

/// Echoes one connection until it closes.
pub async fn tcp_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    stats: Arc<TargetStats>,
    stop: CancellationToken,
) {
    stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = io.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        stats.tcp_bytes.fetch_add(n as u64, Ordering::Relaxed);
        if io.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

pub async fn udp(socket: UdpSocket, stats: Arc<TargetStats>, stop: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        stats.udp_datagrams.fetch_add(1, Ordering::Relaxed);
        let _ = socket.send_to(&buf[..n], from).await;
    }
}
