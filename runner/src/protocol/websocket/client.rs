//! One user's WebSocket connection: the opening handshake, messages out (masked, as a client
//! must), messages in (pings answered, fragments assembled, close honoured) and the heartbeat,
//! sent whenever it is due while the connection is read.
//!
//! Written by hand rather than with tokio-tungstenite because of memory per idle user, the
//! figure the issue sets at 4 KiB: tokio-tungstenite 0.30 held 9.4 KiB per idle client
//! connection (10,000 connections with a heartbeat task each; its read buffer set anywhere
//! from 256 B to 4 KiB made no difference), while this connection keeps no buffer at all
//! while idle: it waits for readability and reads into the worker's shared scratch buffer,
//! keeping only the bytes of a message still incomplete.

use std::cell::RefCell;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::frame::{self, Opcode};
use crate::protocol::net::{Endpoint, NetStream, io_outcome};
use crate::stats::Outcome;

/// The largest message a user accepts; a bigger one is a protocol error.
pub const MAX_MESSAGE: usize = 16 << 20;
/// The largest handshake response head.
const MAX_HEAD: usize = 16 * 1024;
/// A read buffer larger than this is given back once it is empty.
const KEEP_BUFFER: usize = 1024;

enum Woke {
    Notified,
    Timer,
}

/// What a heartbeat sends, and how often.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub every: Duration,
    /// `Text` or `Ping`.
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// A data message, borrowed from the connection until its next read.
#[derive(Debug)]
pub struct Message<'a> {
    pub opcode: Opcode,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub struct Conn {
    stream: NetStream,
    /// Bytes read and not yet consumed; no allocation while nothing is pending.
    rbuf: Vec<u8>,
    /// Bytes at the start of `rbuf` that the last returned message occupies.
    consumed: usize,
    /// A fragmented message being assembled: the opcode of its first frame and its payload.
    frag: Option<(Opcode, Vec<u8>)>,
    /// The last fragmented message, complete.
    assembled: Vec<u8>,
    next_beat: Option<Instant>,
    /// Bytes read from the socket so far.
    pub received: u64,
    /// A write failed or stalled part-way: the stream is unusable.
    broken: bool,
}

/// Opens user `id`'s connection: TCP (and TLS), then the handshake. `head` is the request line
/// and headers, each line ending in CRLF, without the key and the blank line; `out` is the
/// user's write buffer.
pub async fn open(
    ep: &Endpoint,
    id: u64,
    head: &[u8],
    out: &mut Vec<u8>,
    beat: Option<&Heartbeat>,
) -> Result<Conn, Outcome> {
    let started = Instant::now();
    let mut stream = ep.connect(id).await?;
    let key = base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_le_bytes());
    out.clear();
    out.extend_from_slice(head);
    out.extend_from_slice(b"sec-websocket-key: ");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    let handshake = async {
        stream.write_all(out).await.map_err(|e| io_outcome(&e))?;
        stream.flush().await.map_err(|e| io_outcome(&e))?;
        let mut rbuf = Vec::with_capacity(512);
        let head_len = loop {
            if let Some(i) = memchr::memmem::find(&rbuf, b"\r\n\r\n") {
                break i + 4;
            }
            if rbuf.len() >= MAX_HEAD {
                return Err(Outcome::Protocol);
            }
            rbuf.reserve(512);
            match stream.read_buf(&mut rbuf).await {
                Ok(0) => return Err(Outcome::Closed),
                Ok(_) => {}
                Err(e) => return Err(io_outcome(&e)),
            }
        };
        check_response(&rbuf[..head_len], key.as_bytes())?;
        let received = rbuf.len() as u64;
        // Frames the server sent right after its response stay; the head goes.
        let rest = rbuf[head_len..].to_vec();
        Ok((rest, received))
    };
    // One connect timeout for TCP, TLS and the handshake together.
    let deadline = started + ep.connect_timeout;
    let (rbuf, received) = match tokio::time::timeout_at(deadline, handshake).await {
        Err(_) => return Err(Outcome::ConnectTimeout),
        Ok(r) => r?,
    };
    Ok(Conn {
        stream,
        rbuf,
        consumed: 0,
        frag: None,
        assembled: Vec::new(),
        next_beat: beat.map(|b| Instant::now() + b.every),
        received,
        broken: false,
    })
}

/// Checks a handshake response: 101 with the right `Sec-WebSocket-Accept`.
fn check_response(head: &[u8], key: &[u8]) -> Result<(), Outcome> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Outcome::Protocol),
    }
    let refused = |o: Outcome, code: Option<u16>| {
        let status = code.map_or_else(|| "no status".to_string(), |c| c.to_string());
        crate::protocol::reason::note(
            o,
            format_args!("WebSocket upgrade answered {status}, not 101"),
        );
        Err(o)
    };
    match resp.code {
        Some(101) => {}
        // The status is in the reason sample: a failed connect has no code of its own.
        c @ Some(400..=599) => return refused(Outcome::ServerError, c),
        c => return refused(Outcome::Protocol, c),
    }
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value.trim_ascii());
    if accept != Some(frame::accept_key(key).as_bytes()) {
        crate::protocol::reason::note(
            Outcome::Protocol,
            "WebSocket upgrade without the right Sec-WebSocket-Accept",
        );
        return Err(Outcome::Protocol);
    }
    Ok(())
}

fn protocol(_: frame::Error) -> Outcome {
    Outcome::Protocol
}

impl Conn {
    /// Sends one message; returns the bytes written. `frame` is the user's write buffer.
    pub async fn send(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        frame: &mut Vec<u8>,
    ) -> Result<u64, Outcome> {
        frame.clear();
        frame::write_frame(
            frame,
            opcode,
            payload,
            Some(fastrand::u32(..).to_le_bytes()),
        );
        self.write(frame).await?;
        Ok(frame.len() as u64)
    }

    /// Whether a write failed part-way, leaving half a frame on the wire.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Writes `bytes` whole (see `net::write_flushed`); a failure leaves the stream unusable.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        let r = crate::protocol::net::write_flushed(&mut self.stream, bytes).await;
        self.broken |= r.is_err();
        r
    }

    /// Writes a control frame (or a heartbeat message of up to 125 bytes) without a heap
    /// buffer: idle users keep none.
    async fn send_small(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), Outcome> {
        let mut buf = [0u8; frame::MAX_CONTROL_FRAME];
        let payload = &payload[..payload.len().min(125)];
        let mask = fastrand::u32(..).to_le_bytes();
        buf[0] = 0x80 | opcode.bits();
        buf[1] = 0x80 | payload.len() as u8;
        buf[2..6].copy_from_slice(&mask);
        let end = 6 + payload.len();
        buf[6..end].copy_from_slice(payload);
        frame::apply_mask(&mut buf[6..end], mask, 0);
        self.write(&buf[..end]).await
    }

    /// The next data message, answering pings and sending heartbeats meanwhile: `Ok(None)`
    /// when `wake` is notified first, `Timeout` at `deadline`, `Closed` when the server
    /// closes. Waking and the deadline take effect only between frames, never inside a write,
    /// so the stream stays whole whatever interrupts the wait.
    pub async fn recv(
        &mut self,
        scratch: &RefCell<Box<[u8]>>,
        beat: Option<&Heartbeat>,
        deadline: Option<Instant>,
        wake: Option<&Notify>,
    ) -> Result<Option<Message<'_>>, Outcome> {
        if self.consumed > 0 {
            self.rbuf.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.assembled.capacity() > 0 {
            // The last fragmented message has been read: an idle user keeps no buffer.
            self.assembled = Vec::new();
        }
        loop {
            if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_BUFFER {
                self.rbuf = Vec::new();
            }
            if let Some(h) =
                frame::parse_header(&self.rbuf, false, MAX_MESSAGE).map_err(protocol)?
                && self.rbuf.len() >= h.frame_len()
            {
                let body = h.len..h.frame_len();
                match h.opcode {
                    Opcode::Ping => {
                        let mut p = [0u8; 125];
                        let n = body.len();
                        p[..n].copy_from_slice(&self.rbuf[body]);
                        self.rbuf.drain(..h.frame_len());
                        self.send_small(Opcode::Pong, &p[..n]).await?;
                    }
                    Opcode::Pong => {
                        self.rbuf.drain(..h.frame_len());
                    }
                    Opcode::Close => {
                        let mut p = [0u8; 2];
                        let n = body.len().min(2);
                        p[..n].copy_from_slice(&self.rbuf[h.len..h.len + n]);
                        self.rbuf.clear();
                        let _ = self.send_small(Opcode::Close, &p[..n]).await;
                        return Err(Outcome::Closed);
                    }
                    Opcode::Text | Opcode::Binary if h.fin && self.frag.is_none() => {
                        self.consumed = h.frame_len();
                        return Ok(Some(Message {
                            opcode: h.opcode,
                            payload: &self.rbuf[body],
                        }));
                    }
                    Opcode::Text | Opcode::Binary if self.frag.is_none() => {
                        self.frag = Some((h.opcode, self.rbuf[body].to_vec()));
                        self.rbuf.drain(..h.frame_len());
                    }
                    Opcode::Continuation if self.frag.is_some() => {
                        let (opcode, mut so_far) = self.frag.take().expect("checked");
                        if so_far.len() + body.len() > MAX_MESSAGE {
                            return Err(Outcome::Protocol);
                        }
                        so_far.extend_from_slice(&self.rbuf[body]);
                        self.rbuf.drain(..h.frame_len());
                        if h.fin {
                            self.assembled = so_far;
                            return Ok(Some(Message {
                                opcode,
                                payload: &self.assembled,
                            }));
                        }
                        self.frag = Some((opcode, so_far));
                    }
                    // A new message inside a fragmented one, or a continuation of nothing.
                    _ => return Err(Outcome::Protocol),
                }
                continue;
            }
            if !self.wait(scratch, beat, deadline, wake).await? {
                return Ok(None);
            }
        }
    }

    /// Waits for bytes (appended to `rbuf`), sending the heartbeat when it falls due; false
    /// when woken instead.
    async fn wait(
        &mut self,
        scratch: &RefCell<Box<[u8]>>,
        beat: Option<&Heartbeat>,
        deadline: Option<Instant>,
        wake: Option<&Notify>,
    ) -> Result<bool, Outcome> {
        let beat_at = beat.and(self.next_beat);
        let at = match (beat_at, deadline) {
            (Some(b), Some(d)) => Some(b.min(d)),
            (b, d) => b.or(d),
        };
        let timer = async {
            let woken = async {
                match wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = woken => Woke::Notified,
                _ = async {
                    match at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => Woke::Timer,
            }
        };
        let read = match &mut self.stream {
            NetStream::Tcp(tcp) => {
                let got = tokio::select! {
                    r = tcp.readable() => Ok(r),
                    w = timer => Err(w),
                };
                match got {
                    Ok(Ok(())) => {
                        let mut buf = scratch.borrow_mut();
                        match tcp.try_read(&mut buf) {
                            Ok(0) => Err(Outcome::Closed),
                            Ok(n) => {
                                self.rbuf.extend_from_slice(&buf[..n]);
                                self.received += n as u64;
                                Ok(None)
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                            Err(e) => Err(io_outcome(&e)),
                        }
                    }
                    Ok(Err(e)) => Err(io_outcome(&e)),
                    Err(w) => Ok(Some(w)),
                }
            }
            NetStream::Tls(tls) => {
                self.rbuf.reserve(4096);
                let got = tokio::select! {
                    r = tls.read_buf(&mut self.rbuf) => Ok(r),
                    w = timer => Err(w),
                };
                match got {
                    Ok(Ok(0)) => Err(Outcome::Closed),
                    Ok(Ok(n)) => {
                        self.received += n as u64;
                        Ok(None)
                    }
                    Ok(Err(e)) => Err(io_outcome(&e)),
                    Err(w) => Ok(Some(w)),
                }
            }
        };
        match read? {
            None => return Ok(true),
            Some(Woke::Notified) => return Ok(false),
            Some(Woke::Timer) => {}
        }
        let now = Instant::now();
        if let (Some(b), Some(at)) = (beat, self.next_beat)
            && now >= at
        {
            // A beat missed by more than a period (a long stall) is not sent twice.
            self.next_beat = Some(if now - at > b.every {
                now + b.every
            } else {
                at + b.every
            });
            self.send_small(b.opcode, &b.payload).await?;
        }
        if deadline.is_some_and(|d| now >= d) {
            return Err(Outcome::Timeout);
        }
        Ok(true)
    }

    /// Holds the connection until `until` (or until `wake` is notified: false), answering
    /// pings, sending heartbeats and skipping messages. The error is how the connection
    /// failed.
    pub async fn hold(
        &mut self,
        scratch: &RefCell<Box<[u8]>>,
        beat: Option<&Heartbeat>,
        until: Option<Instant>,
        wake: Option<&Notify>,
    ) -> Result<bool, Outcome> {
        loop {
            match self.recv(scratch, beat, until, wake).await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(false),
                Err(Outcome::Timeout) => return Ok(true),
                Err(o) => return Err(o),
            }
        }
    }

    /// A clean close: a close frame (1000, normal), then the TCP shutdown.
    pub async fn close(mut self) {
        let _ = self.send_small(Opcode::Close, &1000u16.to_be_bytes()).await;
        let _ = self.stream.shutdown().await;
    }
}
