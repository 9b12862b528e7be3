//! Redis for users (RESP2): one connection per user, opened with AUTH, SELECT and CLIENT
//! SETNAME, `command` steps written as pre-rendered bytes (a pipeline's copies in one write)
//! and each reply read in place and timed to its own arrival; a Redis Cluster followed by
//! slot (`cluster`).
//!
//! Why our own codec (issue 11, `bench/redis-clients.sh`, 2026-12-08, 50 users on one thread,
//! requests per client CPU-second, median of 3): 1.03–1.11× the `redis` crate 1.8 and
//! 1.31–1.39× `fred` 10.1 without pipelining, 1.34–1.68× and 5.75–6.06× with 16 commands per
//! round trip (BENCHMARKS.md, Redis).

pub mod cluster;
pub mod command;
pub mod kind;
pub mod link;
pub mod resp;

pub use kind::Redis;

use std::ops::Range;

use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::protocol::net::{NetStream, io_outcome};
use crate::stats::Outcome;
use resp::Reply;

/// A read buffer larger than this is given back once empty, so an idle user holds little.
const KEEP_BUFFER: usize = 16 * 1024;
const READ_CHUNK: usize = 16 * 1024;

pub struct Conn {
    stream: NetStream,
    rbuf: Vec<u8>,
    /// Bytes at the start of `rbuf` that replies already returned occupy.
    consumed: usize,
}

impl Conn {
    pub fn new(stream: NetStream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            consumed: 0,
        }
    }

    /// Writes `bytes` whole (see `net::write_flushed`).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        crate::protocol::net::write_flushed(&mut self.stream, bytes).await
    }

    /// Reads until the next reply is complete, by `deadline`: where it lies in the buffer
    /// (`reply` reads it there). Replies of a pipeline that arrived together are returned
    /// one by one without another read.
    pub async fn next(&mut self, deadline: Instant) -> Result<Range<usize>, Outcome> {
        loop {
            let parsed = resp::parse(&self.rbuf[self.consumed..]).inspect_err(|_| {
                crate::protocol::reason::note(Outcome::Protocol, "the Redis reply is not RESP2");
            })?;
            if let Some((_, used)) = parsed {
                let at = self.consumed..self.consumed + used;
                self.consumed += used;
                return Ok(at);
            }
            if self.consumed > 0 {
                self.rbuf.drain(..self.consumed);
                self.consumed = 0;
            }
            if self.rbuf.len() > resp::MAX_REPLY + 64 {
                return Err(Outcome::Protocol);
            }
            self.rbuf.reserve(READ_CHUNK);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => return Err(Outcome::Timeout),
                Ok(Ok(0)) => return Err(Outcome::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_outcome(&e)),
            }
        }
    }

    /// The reply `next` found at `at`.
    pub fn reply(&self, at: Range<usize>) -> Option<Reply<'_>> {
        let (r, _) = resp::parse(self.rbuf.get(at)?).ok()??;
        Some(r)
    }

    /// Whether every byte read so far belongs to a reply already returned.
    pub fn drained(&self) -> bool {
        self.consumed == self.rbuf.len()
    }

    /// While idle: resolves `Ok` when `wake` is notified, `Err` when the server closes the
    /// connection first (a `CLIENT KILL`, a restart, an idle timeout).
    pub async fn watch(&mut self, wake: &Notify) -> Result<(), Outcome> {
        if self.drained() {
            self.consumed = 0;
            if self.rbuf.capacity() > KEEP_BUFFER {
                self.rbuf = Vec::new();
            } else {
                self.rbuf.clear();
            }
        }
        self.stream.watch(wake).await
    }

    pub async fn close(mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.shutdown().await;
    }
}
