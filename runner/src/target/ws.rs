//! The server end of a WebSocket, for `stampede target`: the handshake answer, then echo,
//! timestamped pushes, or an abrupt drop, by path. Like the client, an idle connection keeps
//! no buffer (the target holds hundreds of thousands of them in the connection benchmark).
//! Never panics on a client's bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stats::TargetStats;
use crate::protocol::websocket::frame::{self, Opcode};

const MAX_MESSAGE: usize = 1 << 20;
const KEEP_BUFFER: usize = 1024;

/// A stream a WebSocket can be served on. Plain TCP exposes itself so an idle connection can
/// wait for readability without a read buffer.
pub trait WsIo: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl WsIo for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl WsIo for tokio_rustls::server::TlsStream<TcpStream> {}

/// What a WebSocket path does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `/ws`: every text and binary message comes back as it was.
    Echo,
    /// `/ws/broadcast?every=100ms`: also pushes `{"seq":N,"ts":MICROS}` on that interval,
    /// `ts` being the send time in microseconds since the Unix epoch.
    Broadcast(Duration),
    /// `/ws/drop?after=500ms`: echoes, then drops the connection without a close frame.
    Drop(Duration),
}

impl Mode {
    /// The mode for a request target (`/ws/broadcast?every=250ms`), or why there is none.
    pub fn from_target(target: &str) -> Result<Mode, String> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| -> Result<Duration, String> {
            let v = query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("{path} needs ?{name}=DURATION, e.g. ?{name}=100ms"))?;
            let d = v
                .parse::<stampede_api::Duration>()
                .map_err(|e| format!("{name}={v}: {e}"))?
                .as_std();
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(format!("{name}={v}: expected more than 0s and at most 1h"));
            }
            Ok(d)
        };
        match path.trim_end_matches('/') {
            "/ws" => Ok(Mode::Echo),
            "/ws/broadcast" => param("every").map(Mode::Broadcast),
            "/ws/drop" => param("after").map(Mode::Drop),
            other => Err(format!(
                "no WebSocket at {other}; try /ws, /ws/broadcast?every=100ms or /ws/drop?after=1s"
            )),
        }
    }
}

/// The handshake request's key, if `head` is a WebSocket upgrade request, with its target.
pub fn upgrade_request(head: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
        return None;
    };
    if req.method != Some("GET") {
        return None;
    }
    let has = |name: &str, token: &str| {
        req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case(name)
                && h.value
                    .split(|b| *b == b',')
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has("upgrade", "websocket") {
        return None;
    }
    let key = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))?
        .value
        .trim_ascii()
        .to_vec();
    Some((req.path?.to_string(), key))
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Answers the handshake on `io` (whose request head has been read; `rest` is what followed
/// it) and serves the connection until it ends or `stop`.
pub async fn serve<S: WsIo>(
    mut io: S,
    target: &str,
    key: &[u8],
    rest: Vec<u8>,
    stats: Arc<TargetStats>,
    stop: CancellationToken,
) {
    let mode = match Mode::from_target(target) {
        Ok(m) => m,
        Err(why) => {
            let body = format!("{why}\n");
            let resp = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = io.write_all(resp.as_bytes()).await;
            return;
        }
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        frame::accept_key(key)
    );
    if io.write_all(resp.as_bytes()).await.is_err() {
        return;
    }
    let id = stats.ws_opened();
    let mut conn = ServerConn {
        io,
        rbuf: rest,
        frag: None,
        stats,
        id,
    };
    let _ = conn.run(mode, stop).await;
    conn.stats.ws_closed();
}

struct ServerConn<S> {
    io: S,
    rbuf: Vec<u8>,
    frag: Option<(Opcode, Vec<u8>)>,
    stats: Arc<TargetStats>,
    id: u64,
}

enum Next {
    /// Readable (plain TCP: read with `try_read` next), or already read into `rbuf` (TLS).
    Read {
        done: bool,
    },
    Push,
    Drop,
    Stop,
}

impl<S: WsIo> ServerConn<S> {
    async fn run(&mut self, mode: Mode, stop: CancellationToken) -> Result<(), ()> {
        let started = Instant::now();
        let mut seq = 0u64;
        let (mut push_at, drop_at) = match mode {
            Mode::Echo => (None, None),
            Mode::Broadcast(every) => (Some(started + every), None),
            Mode::Drop(after) => (None, Some(started + after)),
        };
        loop {
            self.handle_frames().await?;
            if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_BUFFER {
                self.rbuf = Vec::new();
            }
            let wake = match (push_at, drop_at) {
                (Some(p), _) => Some((p, Next::Push)),
                (None, Some(d)) => Some((d, Next::Drop)),
                _ => None,
            };
            let timer = async {
                match wake {
                    Some((t, next)) => {
                        tokio::time::sleep_until(t).await;
                        next
                    }
                    None => std::future::pending().await,
                }
            };
            let read = async {
                if let Some(tcp) = self.io.tcp() {
                    tcp.readable().await.map_err(|_| ())?;
                    return Ok(false);
                }
                self.rbuf.reserve(4096);
                match self.io.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => Err(()),
                    Ok(_) => Ok(true),
                }
            };
            let next = tokio::select! {
                _ = stop.cancelled() => Next::Stop,
                n = timer => n,
                r = read => Next::Read { done: r? },
            };
            match next {
                Next::Stop => {
                    let mut close = Vec::new();
                    frame::write_frame(&mut close, Opcode::Close, &1001u16.to_be_bytes(), None);
                    let _ = self.io.write_all(&close).await;
                    return Ok(());
                }
                // Abrupt: no close frame, as when a server process dies.
                Next::Drop => return Err(()),
                Next::Push => {
                    seq += 1;
                    let msg = format!("{{\"seq\":{seq},\"ts\":{}}}", micros_now());
                    let mut out = Vec::with_capacity(msg.len() + 4);
                    frame::write_frame(&mut out, Opcode::Text, msg.as_bytes(), None);
                    self.io.write_all(&out).await.map_err(|_| ())?;
                    if let (Some(p), Mode::Broadcast(every)) = (push_at, mode) {
                        push_at = Some((p + every).max(Instant::now()));
                    }
                }
                Next::Read { done: true } => {}
                Next::Read { done: false } => self.try_read()?,
            }
        }
    }

    /// Plain TCP, readable: takes what is there into `rbuf`; Err at the end of the stream.
    fn try_read(&mut self) -> Result<(), ()> {
        let Some(tcp) = self.io.tcp() else {
            return Ok(());
        };
        let mut buf = [0u8; 2048];
        match tcp.try_read(&mut buf) {
            Ok(0) => Err(()),
            Ok(n) => {
                self.rbuf.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(_) => Err(()),
        }
    }

    /// Answers every complete frame in `rbuf`.
    async fn handle_frames(&mut self) -> Result<(), ()> {
        loop {
            let Some(h) = frame::parse_header(&self.rbuf, true, MAX_MESSAGE).map_err(|_| ())?
            else {
                return Ok(());
            };
            if self.rbuf.len() < h.frame_len() {
                return Ok(());
            }
            let mut payload = self.rbuf[h.len..h.frame_len()].to_vec();
            self.rbuf.drain(..h.frame_len());
            if let Some(m) = h.mask {
                frame::apply_mask(&mut payload, m, 0);
            }
            // Control frames may come between a message's fragments: they leave it be.
            let (opcode, message) = match h.opcode {
                Opcode::Ping => (Opcode::Pong, payload),
                Opcode::Pong => continue,
                Opcode::Close => {
                    let mut close = Vec::new();
                    let code = payload.get(..2).unwrap_or(&[]);
                    frame::write_frame(&mut close, Opcode::Close, code, None);
                    let _ = self.io.write_all(&close).await;
                    return Err(());
                }
                _ => match (h.opcode, h.fin, self.frag.take()) {
                    (Opcode::Text | Opcode::Binary, true, None) => (h.opcode, payload),
                    (Opcode::Text | Opcode::Binary, false, None) => {
                        self.frag = Some((h.opcode, payload));
                        continue;
                    }
                    (Opcode::Continuation, fin, Some((op, mut so_far))) => {
                        if so_far.len() + payload.len() > MAX_MESSAGE {
                            return Err(());
                        }
                        so_far.extend_from_slice(&payload);
                        if !fin {
                            self.frag = Some((op, so_far));
                            continue;
                        }
                        (op, so_far)
                    }
                    _ => return Err(()),
                },
            };
            if opcode != Opcode::Pong {
                self.stats.ws_message(self.id, &message);
            }
            let mut out = Vec::with_capacity(message.len() + 10);
            frame::write_frame(&mut out, opcode, &message, None);
            self.io.write_all(&out).await.map_err(|_| ())?;
        }
    }
}
