//! Opening a user's connection: TCP from the next source address (so one runner can hold
//! more than one source address's ~28k ports' worth of connections to one target), then TLS
//! when the scenario asks for it; and the file-descriptor limit that every connection counts
//! against.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::protocol::tls::TlsClient;
use crate::stats::Outcome;

/// A user's byte stream: plain TCP or TLS over it.
#[derive(Debug)]
pub enum NetStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl NetStream {
    /// The TCP stream, when nothing sits between it and the user: lets idle users wait for
    /// readability without holding a read buffer.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            NetStream::Tcp(s) => Some(s),
            NetStream::Tls(_) => None,
        }
    }

    /// While a user is idle: resolves `Ok` when `wake` is notified, `Err` when the server
    /// closes the connection first (plain TCP only: TLS can't be peeked). Bytes the server
    /// sends meanwhile stay in the socket for the next read; only a wake ends the wait then.
    pub async fn watch(&self, wake: &tokio::sync::Notify) -> Result<(), Outcome> {
        let Some(tcp) = self.tcp() else {
            wake.notified().await;
            return Ok(());
        };
        let mut b = [0u8; 1];
        tokio::select! {
            _ = wake.notified() => Ok(()),
            r = tcp.peek(&mut b) => match r {
                Ok(0) => Err(Outcome::Closed),
                Ok(_) => {
                    wake.notified().await;
                    Ok(())
                }
                Err(e) => Err(io_outcome(&e)),
            },
        }
    }

    /// The protocol the server chose by ALPN (TLS only).
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            NetStream::Tcp(_) => None,
            NetStream::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long one write may take: a server that stops reading must not park a user forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `bytes` whole and flushes them (TLS keeps written bytes in its session until
/// flushed), within `WRITE_TIMEOUT`; a stall is `Timeout`. After a failure the stream may
/// hold half a message: the caller drops it.
pub async fn write_flushed(stream: &mut NetStream, bytes: &[u8]) -> Result<(), Outcome> {
    use tokio::io::AsyncWriteExt;
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await;
    match written {
        Ok(r) => r.map_err(|e| io_outcome(&e)),
        Err(_) => Err(Outcome::Timeout),
    }
}

/// The outcome of a read or write that failed on an open connection. Invalid data there
/// comes from TLS (the OS never says it): an alert after the handshake, such as a server
/// refusing a missing client certificate once TLS 1.3 has let the client send.
pub fn io_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::TimedOut => Outcome::Timeout,
        io::ErrorKind::UnexpectedEof => Outcome::Closed,
        io::ErrorKind::InvalidData => {
            crate::protocol::reason::note(Outcome::Tls, e);
            Outcome::Tls
        }
        _ => Outcome::Reset,
    }
}

/// Where users connect, and how.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<TlsClient>,
    pub connect_timeout: Duration,
    /// Local addresses users connect from, taken in turn by user id; empty: the system's.
    pub sources: Arc<[IpAddr]>,
}

impl Endpoint {
    /// The source address for user `id`.
    pub fn source(&self, id: u64) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[(id % self.sources.len() as u64) as usize])
    }

    /// Opens user `id`'s connection: TCP, then TLS if configured, within the connect timeout.
    pub async fn connect(&self, id: u64) -> Result<NetStream, Outcome> {
        let opened = async {
            let tcp = connect_tcp(self.addr, self.source(id)).await?;
            let Some(tls) = &self.tls else {
                return Ok(NetStream::Tcp(tcp));
            };
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map(|s| NetStream::Tls(Box::new(s)))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidData => {
                        // rustls's own words: unknown issuer, name mismatch, expired, alert.
                        crate::protocol::reason::note(Outcome::Tls, &e);
                        Outcome::Tls
                    }
                    _ => connect_outcome(&e),
                })
        };
        match tokio::time::timeout(self.connect_timeout, opened).await {
            Err(_) => Err(Outcome::ConnectTimeout),
            Ok(r) => r,
        }
    }

    /// A UDP socket for user `id`, connected to the target so only its replies arrive.
    pub async fn udp(&self, id: u64) -> Result<UdpSocket, Outcome> {
        let local = match (self.source(id), self.addr) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (None, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
        };
        let s = UdpSocket::bind(local)
            .await
            .map_err(|e| connect_outcome(&e))?;
        s.connect(self.addr)
            .await
            .map_err(|e| connect_outcome(&e))?;
        Ok(s)
    }
}

/// The outcome of a failed connect, by what the OS said.
/// Refused and timed out say it all; any other failure keeps the OS's words as its reason
/// (no route, no source address, too many open files …).
pub fn connect_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::ConnectRefused,
        io::ErrorKind::TimedOut => Outcome::ConnectTimeout,
        _ => {
            crate::protocol::reason::note(Outcome::ConnectFailed, e);
            Outcome::ConnectFailed
        }
    }
}

/// A TCP connection from `source` (any port) to `addr`, with Nagle off: requests and
/// messages are written whole, and Nagle would only hold them back.
pub async fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, Outcome> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| connect_outcome(&e))?;
    if let Some(ip) = source {
        // Let connect() choose the port for this source and this destination together
        // (IP_BIND_ADDRESS_NO_PORT). A plain bind to port 0 reserves a port for every
        // destination and searches the whole range for a free one each time: holding
        // 100,000 WebSocket users over 5 source addresses, the connect phase slowed to under
        // 500 connections/s as the ranges filled and did not finish in 4 minutes.
        #[cfg(target_os = "linux")]
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| connect_outcome(&e))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| connect_outcome(&e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Raises this process's open-file limit to its hard limit, and says what to change when
/// `needed` descriptors (connections plus some for the runner itself) will not fit. Each
/// connection is a file descriptor: a default soft limit of 1,024 would cap a runner at
/// about a thousand users.
pub fn raise_nofile(needed: u64) -> Result<u64, String> {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if soft < hard {
        rlimit::Resource::NOFILE
            .set(hard, hard)
            .map_err(|e| format!("cannot raise the open-file limit from {soft} to {hard}: {e}"))?;
    }
    if needed > hard {
        return Err(format!(
            "this runner may hold up to {needed} connections and files, but the system lets it open only {hard} \
             (hard RLIMIT_NOFILE); connections past that fail as connect_failed. Raise the hard limit \
             (`ulimit -Hn`, systemd's LimitNOFILE=, or the container runtime's nofile ulimit), or spread \
             the users over more runners (spec.runners or spec.runner.maxConnections)"
        ));
    }
    Ok(hard)
}

/// Descriptors a runner needs beyond one per connection: listeners, the coordinator stream,
/// timers, stdio.
pub const SPARE_FILES: u64 = 64;
