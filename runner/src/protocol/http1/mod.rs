//! One virtual user's HTTP/1.1 keep-alive connection: write a pre-rendered request, read one
//! response (Content-Length, chunked, or close-delimited) into a reused buffer.
//!
//! Written by hand over `httparse` (the parser hyper uses) rather than with hyper's client:
//! the request is already bytes, so the exchange is one write, one read and one parse, with no
//! per-request Request/HeaderMap/Response allocation. Measured on one nginx (BENCHMARKS.md,
//! 2026-11-25): 233k requests per client CPU-second here vs 140k for oha, which uses hyper's
//! client, and 214k for wrk.
//! Never panics on a target's bytes: every malformation is `Outcome::Protocol`.

pub mod kind;
pub use kind::Http1;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocol::net::{NetStream, io_outcome};
use crate::stats::Outcome;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_HEADERS: usize = 96;
const READ_CHUNK: usize = 16 * 1024;

/// A response held in the connection's buffers until the next exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Response {
    pub status: u16,
    head_len: usize,
    body_start: usize,
    body_len: usize,
    chunked: bool,
    /// Bytes of `buf` this response occupies.
    consumed: usize,
    pub keep_alive: bool,
    /// Bytes read from the socket for this response.
    pub received: u64,
}

#[derive(Debug)]
pub struct Conn {
    stream: NetStream,
    buf: BytesMut,
    /// Body of a chunked response, de-chunked.
    chunked_body: Vec<u8>,
    last: Option<Response>,
    exchanges: u64,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Why an exchange failed, and whether it may be retried on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub outcome: Outcome,
    /// The server closed a reused keep-alive connection before sending any byte: the request
    /// may never have been seen, so one retry on a fresh connection is what browsers do.
    pub stale: bool,
}

impl From<Outcome> for Failure {
    fn from(outcome: Outcome) -> Self {
        Failure {
            outcome,
            stale: false,
        }
    }
}

impl Conn {
    /// A connection over `stream` (opened by `net::Endpoint::connect`).
    pub fn new(stream: NetStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            chunked_body: Vec::new(),
            last: None,
            exchanges: 0,
        }
    }

    /// Sends `req` and reads the response. The response stays readable through `head`/`body`
    /// until the next call.
    pub async fn exchange(&mut self, req: &[u8], is_head: bool) -> Result<Response, Failure> {
        if let Some(last) = self.last.take() {
            self.buf.advance(last.consumed);
        }
        if !self.buf.is_empty() {
            // Bytes nobody asked for arrived after the previous response.
            return Err(Outcome::Protocol.into());
        }
        let reused = self.exchanges > 0;
        self.exchanges += 1;
        // Flushed: over TLS, written bytes wait in the session until then.
        let written = async {
            self.stream.write_all(req).await?;
            self.stream.flush().await
        };
        if let Err(e) = written.await {
            let outcome = io_outcome(&e);
            return Err(Failure {
                outcome,
                stale: reused && outcome == Outcome::Reset,
            });
        }
        let r = self.read_response(is_head).await.map_err(|mut f| {
            f.stale = reused && f.outcome == Outcome::Closed && f.stale;
            f
        })?;
        self.last = Some(r);
        Ok(r)
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    async fn fill(&mut self, received: &mut u64) -> Result<usize, Failure> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(n) => {
                *received += n as u64;
                Ok(n)
            }
            Err(e) => Err(io_outcome(&e).into()),
        }
    }

    async fn read_response(&mut self, is_head: bool) -> Result<Response, Failure> {
        let mut received = 0u64;
        let mut skip = 0; // interim (1xx) responses already read
        loop {
            let (status, head_len, framing, keep_alive) = loop {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[skip..]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let (framing, keep_alive) = framing_of(&resp, status, is_head)?;
                        break (status, skip + n, framing, keep_alive);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() - skip > MAX_HEAD {
                            return Err(Outcome::Protocol.into());
                        }
                        if self.fill(&mut received).await? == 0 {
                            let fresh = self.buf.len() == skip && received == 0;
                            return Err(Failure {
                                outcome: Outcome::Closed,
                                stale: fresh,
                            });
                        }
                    }
                    Err(_) => return Err(Outcome::Protocol.into()),
                }
            };
            if (100..200).contains(&status) && status != 101 {
                skip = head_len;
                continue;
            }
            let mut r = Response {
                status,
                head_len,
                body_start: head_len,
                keep_alive,
                ..Response::default()
            };
            match framing {
                Framing::None => {}
                Framing::Length(n) => {
                    if n > MAX_BODY {
                        return Err(Outcome::Protocol.into());
                    }
                    while self.buf.len() < head_len + n {
                        if self.fill(&mut received).await? == 0 {
                            return Err(Outcome::Closed.into());
                        }
                    }
                    r.body_len = n;
                }
                Framing::UntilClose => {
                    while self.fill(&mut received).await? > 0 {
                        if self.buf.len() - head_len > MAX_BODY {
                            return Err(Outcome::Protocol.into());
                        }
                    }
                    r.body_len = self.buf.len() - head_len;
                    r.keep_alive = false;
                }
                Framing::Chunked => {
                    let (len, end) = self.read_chunked(head_len, &mut received).await?;
                    r.chunked = true;
                    r.body_len = len;
                    r.consumed = end;
                }
            }
            if !r.chunked {
                r.consumed = head_len + r.body_len;
            }
            r.received = received;
            return Ok(r);
        }
    }

    /// De-chunks the body starting at `pos` into `chunked_body`; returns its length and the
    /// end of the chunked encoding (trailers included) in `buf`.
    async fn read_chunked(
        &mut self,
        mut pos: usize,
        received: &mut u64,
    ) -> Result<(usize, usize), Failure> {
        self.chunked_body.clear();
        loop {
            match httparse::parse_chunk_size(&self.buf[pos..]) {
                Ok(httparse::Status::Complete((idx, size))) => {
                    let size =
                        usize::try_from(size).map_err(|_| Failure::from(Outcome::Protocol))?;
                    if size == 0 {
                        // Trailers: header lines up to an empty line.
                        pos += idx;
                        loop {
                            match memchr::memmem::find(&self.buf[pos..], b"\r\n") {
                                Some(0) => return Ok((self.chunked_body.len(), pos + 2)),
                                Some(n) => pos += n + 2,
                                None => {
                                    if self.buf.len() - pos > MAX_HEAD {
                                        return Err(Outcome::Protocol.into());
                                    }
                                    if self.fill(received).await? == 0 {
                                        return Err(Outcome::Closed.into());
                                    }
                                }
                            }
                        }
                    }
                    if self.chunked_body.len() + size > MAX_BODY {
                        return Err(Outcome::Protocol.into());
                    }
                    let need = pos + idx + size + 2;
                    while self.buf.len() < need {
                        if self.fill(received).await? == 0 {
                            return Err(Outcome::Closed.into());
                        }
                    }
                    if &self.buf[need - 2..need] != b"\r\n" {
                        return Err(Outcome::Protocol.into());
                    }
                    self.chunked_body
                        .extend_from_slice(&self.buf[pos + idx..need - 2]);
                    pos = need;
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() - pos > 1024 {
                        return Err(Outcome::Protocol.into());
                    }
                    if self.fill(received).await? == 0 {
                        return Err(Outcome::Closed.into());
                    }
                }
                Err(_) => return Err(Outcome::Protocol.into()),
            }
        }
    }

    /// The status line and headers of the last response.
    pub fn head(&self, r: &Response) -> &[u8] {
        &self.buf[..r.head_len]
    }

    /// The body of the last response.
    pub fn body(&self, r: &Response) -> &[u8] {
        if r.chunked {
            &self.chunked_body
        } else {
            &self.buf[r.body_start..r.body_start + r.body_len]
        }
    }

    /// Closes the write side so the server sees a clean FIN.
    pub async fn shutdown(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn framing_of(
    resp: &httparse::Response,
    status: u16,
    is_head: bool,
) -> Result<(Framing, bool), Failure> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Failure::from(Outcome::Protocol))?;
            if length.is_some_and(|l| l != v) {
                return Err(Outcome::Protocol.into());
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                close = true;
            } else if h
                .value
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"))
            {
                close = false;
            }
        }
    }
    let framing = if is_head || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((framing, !close))
}

/// Finds a header's value in a response head (case-insensitive name).
pub fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(head).ok()?;
    resp.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}
