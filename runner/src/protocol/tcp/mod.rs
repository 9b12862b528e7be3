//! A user's TCP connection for `send`/`expect` steps: bytes out, and replies read up to where
//! the scenario says they end (a delimiter, a length prefix, or a regular expression).
//! Never panics on a peer's bytes.

pub mod kind;
pub use kind::Tcp;

use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::protocol::net::{NetStream, io_outcome};
use crate::stats::Outcome;

/// Where a TCP reply ends.
#[derive(Debug)]
pub enum Framing {
    Delimiter(Box<memchr::memmem::Finder<'static>>),
    LengthPrefix(u8),
    Regex(regex::bytes::Regex),
}

/// The longest reply a user reads; longer is a protocol error.
const MAX_REPLY: usize = 64 * 1024 * 1024;
/// A read buffer larger than this is given back once empty.
const KEEP_BUFFER: usize = 4096;

#[derive(Debug)]
pub struct Conn {
    stream: NetStream,
    rbuf: Vec<u8>,
    consumed: usize,
    pub received: u64,
}

impl Conn {
    pub fn new(stream: NetStream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            consumed: 0,
            received: 0,
        }
    }

    /// Writes `bytes` whole (see `net::write_flushed`).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        crate::protocol::net::write_flushed(&mut self.stream, bytes).await
    }

    /// The next reply, framed as `framing` says, by `deadline`; the range of `bytes()` it
    /// occupies (without a length prefix).
    pub async fn reply(
        &mut self,
        framing: &Framing,
        deadline: Instant,
    ) -> Result<Range<usize>, Outcome> {
        if self.consumed > 0 {
            self.rbuf.drain(..self.consumed);
            self.consumed = 0;
        }
        loop {
            if let Some((body, end)) = frame_end(&self.rbuf, framing)? {
                self.consumed = end;
                return Ok(body);
            }
            if self.rbuf.len() >= MAX_REPLY {
                return Err(Outcome::Protocol);
            }
            self.rbuf.reserve(4096);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => return Err(Outcome::Timeout),
                Ok(Ok(0)) => return Err(Outcome::Closed),
                Ok(Ok(n)) => self.received += n as u64,
                Ok(Err(e)) => return Err(io_outcome(&e)),
            }
        }
    }

    /// The bytes `reply` ranges point into.
    pub fn bytes(&self) -> &[u8] {
        &self.rbuf
    }

    /// While idle: resolves `Ok` when `wake` is notified, `Err` when the server closes the
    /// connection first. Bytes the server sends meanwhile stay for the next reply.
    pub async fn watch(&mut self, wake: &Notify) -> Result<(), Outcome> {
        if self.rbuf.len() == self.consumed && self.rbuf.capacity() > KEEP_BUFFER {
            self.rbuf = Vec::new();
            self.consumed = 0;
        }
        self.stream.watch(wake).await
    }

    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Where the first reply in `buf` ends: (its body, bytes it takes), or `None` if incomplete.
pub fn frame_end(buf: &[u8], framing: &Framing) -> Result<Option<(Range<usize>, usize)>, Outcome> {
    Ok(match framing {
        Framing::Delimiter(d) => d.find(buf).map(|i| {
            let end = i + d.needle().len();
            (0..end, end)
        }),
        Framing::LengthPrefix(n) => {
            let n = usize::from(*n);
            if buf.len() < n {
                return Ok(None);
            }
            let len = buf[..n]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            if len > MAX_REPLY as u64 {
                return Err(Outcome::Protocol);
            }
            let end = n + len as usize;
            (buf.len() >= end).then_some((n..end, end))
        }
        // A pattern that can match nothing must still wait for bytes.
        Framing::Regex(r) => r
            .find_iter(buf)
            .find(|m| m.end() > 0)
            .map(|m| (0..m.end(), m.end())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_end_where_their_framing_says() {
        let delim = Framing::Delimiter(Box::new(memchr::memmem::Finder::new(b"\r\n").into_owned()));
        assert_eq!(frame_end(b"PONG\r\nrest", &delim), Ok(Some((0..6, 6))));
        assert_eq!(frame_end(b"PON", &delim), Ok(None));
        let len = Framing::LengthPrefix(2);
        assert_eq!(
            frame_end(&[0, 3, b'a', b'b', b'c', b'z'], &len),
            Ok(Some((2..5, 5)))
        );
        assert_eq!(frame_end(&[0, 3, b'a'], &len), Ok(None));
        assert_eq!(frame_end(&[0], &len), Ok(None));
        assert_eq!(
            frame_end(&[0xff; 8], &Framing::LengthPrefix(8)),
            Err(Outcome::Protocol)
        );
        let re = Framing::Regex(regex::bytes::Regex::new(r"OK \d+\n").unwrap());
        assert_eq!(frame_end(b"OK 12\nmore", &re), Ok(Some((0..6, 6))));
        assert_eq!(frame_end(b"OK 1", &re), Ok(None));
        let lines = Framing::Regex(regex::bytes::Regex::new(r"(?m)^.*$").unwrap());
        assert_eq!(
            frame_end(b"", &lines),
            Ok(None),
            "an empty match is no reply"
        );
    }
}
