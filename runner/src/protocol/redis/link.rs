//! A user's Redis connections and how each is opened: TCP (TLS), then AUTH, SELECT, CLIENT
//! SETNAME and the subscriptions in one write, every reply checked.

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::protocol::Io;
use crate::protocol::redis::Conn;
use crate::protocol::redis::resp::{self, Type, write_bulk};
use crate::script::template::Tpl;
use crate::stats::Outcome;

/// A user's connections: the one it opened first and, in a cluster, one to every other node
/// it has sent to.
pub struct Links {
    pub main: Conn,
    pub main_addr: SocketAddr,
    pub others: Vec<(SocketAddr, Conn)>,
}

/// What every connection of a user sends first.
#[derive(Debug)]
pub struct Hello {
    /// AUTH and SELECT, as the URL says: written before each connection's CLIENT SETNAME.
    pub hello: Vec<u8>,
    pub hello_replies: usize,
    pub client_prefix: String,
    /// Pub/sub: SUBSCRIBE and PSUBSCRIBE arguments, sent on every connect.
    pub channels: Vec<Tpl>,
    pub patterns: Vec<Tpl>,
}

impl Hello {
    /// Opens one connection to `addr` (the endpoint's, or a cluster node's) and sets it up:
    /// AUTH, SELECT, CLIENT SETNAME, the subscriptions.
    pub async fn open(&self, addr: SocketAddr, io: &mut Io<'_>) -> Result<Conn, Outcome> {
        let started = Instant::now();
        let (endpoint, id) = (io.endpoint, io.id);
        let stream = if addr == endpoint.addr {
            endpoint.connect(id).await?
        } else {
            let node = crate::protocol::net::Endpoint {
                addr,
                ..endpoint.clone()
            };
            node.connect(id).await?
        };
        let mut conn = Conn::new(stream);
        let name = format!("{}-{}", self.client_prefix, io.vu_id);
        let (cx, out, buf) = io.split();
        out.clear();
        out.extend_from_slice(&self.hello);
        resp::write_command(
            out,
            [&b"CLIENT"[..], b"SETNAME", name.as_bytes()].into_iter(),
        );
        for (cmd, list) in [
            (&b"SUBSCRIBE"[..], &self.channels),
            (b"PSUBSCRIBE", &self.patterns),
        ] {
            if list.is_empty() {
                continue;
            }
            resp::write_array_header(out, 1 + list.len());
            write_bulk(out, cmd);
            for c in list {
                buf.clear();
                c.render(buf, &cx);
                write_bulk(out, buf);
            }
        }
        conn.send(out).await?;
        let deadline = started + endpoint.connect_timeout;
        // One reply per set-up command, then one confirmation per channel and pattern.
        let replies = self.hello_replies + 1 + self.channels.len() + self.patterns.len();
        for _ in 0..replies {
            let at = conn.next(deadline).await.map_err(|o| match o {
                Outcome::Timeout => Outcome::ConnectTimeout,
                o => o,
            })?;
            let reply = conn.reply(at).ok_or(Outcome::Protocol)?;
            if reply.kind == Type::Error {
                // WRONGPASS, NOAUTH, a database out of range: the server's words say which.
                crate::protocol::reason::note(
                    Outcome::ServerError,
                    format_args!(
                        "Redis refused the connection's set-up: {}",
                        String::from_utf8_lossy(reply.data)
                    ),
                );
                return Err(Outcome::ServerError);
            }
        }
        Ok(conn)
    }
}
