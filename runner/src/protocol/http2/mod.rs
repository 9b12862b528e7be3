//! HTTP/2 for users (hyper's client): one connection per group of `streams` users, each
//! user's requests a stream on it. A group's connection is opened by whichever user needs it
//! first, and reopened the same way after it breaks.

pub mod kind;
pub use kind::Http2;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

use crate::protocol::net::Endpoint;
use crate::stats::Outcome;

/// Body bytes a response may have; more is a protocol error, as for HTTP/1.1.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The connection a group of users shares.
#[derive(Default)]
pub struct Group {
    conn: RefCell<Option<(u64, SendRequest<Full<Bytes>>)>>,
    generation: Cell<u64>,
    opening: Cell<bool>,
    opened: Notify,
    /// Connection attempts so far, and how the latest failed one ended: users that waited
    /// for an attempt take its failure instead of trying again one after another.
    attempts: Cell<u64>,
    last_failure: Cell<Option<(u64, Outcome)>>,
}

/// Why no connection could be had.
#[derive(Clone, Copy, Debug)]
pub struct Failed {
    pub outcome: Outcome,
    /// An open-looking connection turned out closed and was dropped meanwhile (see `Sender`).
    pub replaced: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("generation", &self.generation.get())
            .finish()
    }
}

/// The group's connection for one request.
pub struct Sender {
    pub generation: u64,
    pub send: SendRequest<Full<Bytes>>,
    /// A new connection was opened for it.
    pub opened: bool,
    /// It replaced one that had closed without any request noticing (nobody counted it gone).
    pub replaced: bool,
}

impl Group {
    /// The group's connection, opened (as user `id`) if there is none; users that ask while
    /// another opens it wait for that one.
    pub async fn sender(&self, ep: &Endpoint, id: u64) -> Result<Sender, Failed> {
        let mut replaced = false;
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                match conn.as_ref() {
                    Some((g, s)) if !s.is_closed() => {
                        return Ok(Sender {
                            generation: *g,
                            send: s.clone(),
                            opened: false,
                            replaced,
                        });
                    }
                    // Closed by the server between requests: gone now.
                    Some(_) => {
                        *conn = None;
                        replaced = true;
                    }
                    None => {}
                }
            }
            if self.opening.get() {
                let pending = self.attempts.get();
                self.opened.notified().await;
                if let Some((attempt, outcome)) = self.last_failure.get()
                    && attempt == pending
                {
                    return Err(Failed { outcome, replaced });
                }
                continue;
            }
            let attempt = self.attempts.get() + 1;
            self.attempts.set(attempt);
            self.opening.set(true);
            let r = open(ep, id).await;
            self.opening.set(false);
            if let Err(outcome) = r {
                self.last_failure.set(Some((attempt, outcome)));
            }
            self.opened.notify_waiters();
            let send = r.map_err(|outcome| Failed { outcome, replaced })?;
            let generation = self.generation.get() + 1;
            self.generation.set(generation);
            *self.conn.borrow_mut() = Some((generation, send.clone()));
            return Ok(Sender {
                generation,
                send,
                opened: true,
                replaced,
            });
        }
    }

    /// The connection of `generation` failed; true if it was the current one (now gone).
    pub fn broken(&self, generation: u64) -> bool {
        let mut c = self.conn.borrow_mut();
        if c.as_ref().is_some_and(|(g, _)| *g == generation) {
            *c = None;
            return true;
        }
        false
    }

    /// Whether a connection is open now.
    pub fn is_open(&self) -> bool {
        self.conn.borrow().is_some()
    }
}

async fn open(ep: &Endpoint, id: u64) -> Result<SendRequest<Full<Bytes>>, Outcome> {
    let started = tokio::time::Instant::now();
    let stream = ep.connect(id).await?;
    if ep.tls.is_some() && stream.alpn() != Some(b"h2".as_slice()) {
        crate::protocol::reason::note(
            Outcome::Protocol,
            "the TLS server did not agree to HTTP/2 (ALPN h2)",
        );
        return Err(Outcome::Protocol);
    }
    let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream));
    // One connect timeout for TCP, TLS and the handshake together.
    let deadline = started + ep.connect_timeout;
    let (send, conn) = match tokio::time::timeout_at(deadline, handshake).await {
        Err(_) => return Err(Outcome::ConnectTimeout),
        Ok(Err(e)) => {
            crate::protocol::reason::note(Outcome::Protocol, format_args!("HTTP/2 handshake: {e}"));
            return Err(Outcome::Protocol);
        }
        Ok(Ok(x)) => x,
    };
    // The connection runs until every user of the group has dropped its sender.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn outcome(e: &hyper::Error) -> Outcome {
    if e.is_parse() || e.is_user() {
        Outcome::Protocol
    } else if e.is_canceled() || e.is_closed() {
        Outcome::Closed
    } else {
        Outcome::Reset
    }
}

/// A response, read whole.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Header and body bytes, roughly as on the wire (HPACK makes the real figure smaller).
    pub received: u64,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
}

/// Sends one request on `send` and reads the response within `timeout`.
pub async fn exchange(
    send: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response, Outcome> {
    let go = async {
        send.ready().await.map_err(|e| outcome(&e))?;
        let resp = send.send_request(req).await.map_err(|e| outcome(&e))?;
        let (parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| Outcome::Protocol)?
            .to_bytes();
        let head: usize = parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        Ok(Response {
            status: parts.status,
            received: (head + body.len()) as u64,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, go).await {
        Err(_) => Err(Outcome::Timeout),
        Ok(r) => r,
    }
}
