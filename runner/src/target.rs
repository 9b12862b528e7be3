//! `stampede target`: the built-in demo and test target. One port speaks HTTP/1.1, HTTP/2
//! (cleartext, prior knowledge) and WebSocket; a TLS port speaks the same with ALPN (and TCP
//! echo to clients that ask for no protocol); a TCP port echoes bytes; a UDP port echoes
//! datagrams. It counts what it serves, so tests can compare what the runner claims with
//! what the server saw. With `reuse_port`, several target processes share the same ports
//! (SO_REUSEPORT): one process can hold fewer connections than the open-file limit allows.

mod echo;
mod http;
mod prefixed;
mod stats;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use prefixed::Prefixed;
pub use stats::TargetStats;
use ws::WsIo;

/// The longest request head the target reads before deciding between HTTP and WebSocket.
const MAX_HEAD: usize = 16 * 1024;

/// Where the target listens; `None` for a port it does not open.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub http: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
    /// Bind with SO_REUSEPORT so several processes serve the same ports.
    pub reuse_port: bool,
}

impl TargetConfig {
    /// HTTP on `http`; TLS, TCP echo and UDP echo on free ports of the same address.
    pub fn all_on(http: SocketAddr) -> TargetConfig {
        let free = SocketAddr::new(http.ip(), 0);
        TargetConfig {
            http,
            tls: Some(free),
            tcp: Some(free),
            udp: Some(free),
            reuse_port: false,
        }
    }
}

/// A running target; dropping it does not stop it, `shutdown` does.
#[derive(Debug)]
pub struct Target {
    /// HTTP/1.1, HTTP/2 (h2c) and WebSocket.
    pub addr: SocketAddr,
    /// TLS: HTTPS, HTTP/2, WSS, and TCP echo without ALPN.
    pub tls_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub udp_addr: Option<SocketAddr>,
    pub stats: Arc<TargetStats>,
    stop: CancellationToken,
}

fn listen_tcp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The kernel caps this at net.core.somaxconn; ask for plenty so connection storms queue
    // instead of being refused.
    socket.listen(65_535)?;
    TcpListener::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A port that could not be bound, named by the flag that sets it and its address, with a
/// hint for the usual causes; the kind of `e` is kept.
fn bind_error(flag: &str, addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => " (is another server running there?)",
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        std::io::ErrorKind::AddrNotAvailable => " (is that address one of this machine's?)",
        _ => "",
    };
    // "Address already in use (os error 98)": the number says nothing to a user.
    let mut cause = e.to_string();
    if let Some(code) = e.raw_os_error() {
        cause = cause.replace(&format!(" (os error {code})"), "");
    }
    std::io::Error::new(
        e.kind(),
        format!("{flag} {addr}: cannot listen: {cause}{hint}"),
    )
}

impl Target {
    /// Every port on the address of `addr` (HTTP exactly there, the others on free ports),
    /// served on the current tokio runtime until `shutdown`.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Target> {
        Target::start_with(TargetConfig::all_on(addr)).await
    }

    /// Binds every port of `cfg`. A port that cannot be bound fails with an error naming the
    /// `stampede target` flag that set it and its address (`--listen 127.0.0.1:8080: cannot
    /// listen: …`), of the bind error's kind.
    pub async fn start_with(cfg: TargetConfig) -> std::io::Result<Target> {
        let stats = Arc::new(TargetStats::default());
        let stop = CancellationToken::new();
        let http = listen_tcp(cfg.http, cfg.reuse_port)
            .map_err(|e| bind_error("--listen", cfg.http, e))?;
        let addr = http.local_addr()?;
        tokio::spawn(accept_loop(http, None, stats.clone(), stop.clone()));
        let tls_addr = match cfg.tls {
            Some(a) => {
                let config = crate::protocol::tls::self_signed_server().map_err(|e| {
                    std::io::Error::other(format!(
                        "--tls-listen {a}: cannot make the self-signed certificate: {e}"
                    ))
                })?;
                let l =
                    listen_tcp(a, cfg.reuse_port).map_err(|e| bind_error("--tls-listen", a, e))?;
                let bound = l.local_addr()?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                tokio::spawn(accept_loop(l, Some(acceptor), stats.clone(), stop.clone()));
                Some(bound)
            }
            None => None,
        };
        let tcp_addr = match cfg.tcp {
            Some(a) => {
                let l =
                    listen_tcp(a, cfg.reuse_port).map_err(|e| bind_error("--tcp-listen", a, e))?;
                let bound = l.local_addr()?;
                tokio::spawn(echo::tcp(l, stats.clone(), stop.clone()));
                Some(bound)
            }
            None => None,
        };
        let udp_addr = match cfg.udp {
            Some(a) => {
                let s =
                    bind_udp(a, cfg.reuse_port).map_err(|e| bind_error("--udp-listen", a, e))?;
                let bound = s.local_addr()?;
                tokio::spawn(echo::udp(s, stats.clone(), stop.clone()));
                Some(bound)
            }
            None => None,
        };
        Ok(Target {
            addr,
            tls_addr,
            tcp_addr,
            udp_addr,
            stats,
            stop,
        })
    }

    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// The next connection, with Nagle off; `None` once `stop` is cancelled. Out of file
/// descriptors or a transient error: it backs off briefly and keeps serving.
async fn accept(listener: &TcpListener, stop: &CancellationToken) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stats: Arc<TargetStats>,
    stop: CancellationToken,
) {
    while let Some(stream) = accept(&listener, &stop).await {
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (stats, stop) = (stats.clone(), stop.clone());
        match &tls {
            None => {
                tokio::spawn(serve_conn(stream, stats, stop));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    let Ok(Ok(tls)) = handshake.await else {
                        return;
                    };
                    // A client that asked for no application protocol gets TCP echo.
                    if tls.get_ref().1.alpn_protocol().is_none() {
                        echo::tcp_conn(tls, stats, stop).await;
                    } else {
                        serve_conn(tls, stats, stop).await;
                    }
                });
            }
        }
    }
}

/// One connection on an HTTP port: its first request head decides between a WebSocket and
/// hyper (HTTP/1.1 or HTTP/2), which then reads the head again from the start.
async fn serve_conn<S: WsIo + Send + 'static>(
    mut io: S,
    stats: Arc<TargetStats>,
    stop: CancellationToken,
) {
    let mut head = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() >= MAX_HEAD {
            break head.len();
        }
        head.reserve(1024);
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            r = io.read_buf(&mut head) => r,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    if let Some((target, key)) = ws::upgrade_request(&head[..head_end]) {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let rest = head[head_end..].to_vec();
        drop(head);
        ws::serve(io, &target, &key, rest, stats, stop).await;
        return;
    }
    serve_http(Prefixed::new(head, io), stats, stop).await;
}

async fn serve_http<S>(io: S, stats: Arc<TargetStats>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| http::handle(req, stats.clone()));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config `stampede target --listen <http>` builds, with the other ports off.
    fn only_http(http: SocketAddr) -> TargetConfig {
        TargetConfig {
            http,
            tls: None,
            tcp: None,
            udp: None,
            reuse_port: false,
        }
    }

    async fn refusal(cfg: TargetConfig) -> std::io::Error {
        match Target::start_with(cfg).await {
            Ok(t) => {
                t.shutdown();
                panic!("the target started on a busy port")
            }
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn a_busy_listen_port_is_refused_naming_the_flag_and_the_address() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let e = refusal(only_http(addr)).await;
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!(
                "--listen {addr}: cannot listen: Address already in use (is another server running there?)"
            )
        );
    }

    #[tokio::test]
    async fn each_busy_port_is_named_by_its_own_flag() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tcp, udp) = (busy.local_addr().unwrap(), busy_udp.local_addr().unwrap());
        let free = "127.0.0.1:0".parse().unwrap();
        for (flag, cfg) in [
            (
                "--tls-listen",
                TargetConfig {
                    tls: Some(tcp),
                    ..only_http(free)
                },
            ),
            (
                "--tcp-listen",
                TargetConfig {
                    tcp: Some(tcp),
                    ..only_http(free)
                },
            ),
            (
                "--udp-listen",
                TargetConfig {
                    udp: Some(udp),
                    ..only_http(free)
                },
            ),
        ] {
            let at = cfg.tls.or(cfg.tcp).or(cfg.udp).unwrap();
            let e = refusal(cfg).await;
            assert!(
                e.to_string().starts_with(&format!(
                    "{flag} {at}: cannot listen: Address already in use"
                )),
                "{flag}: {e}"
            );
            assert!(!e.to_string().contains("TargetConfig"), "{e}");
        }
    }
}
