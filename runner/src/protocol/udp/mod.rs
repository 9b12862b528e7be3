//! A user's UDP socket for `send`/`expect` steps: a datagram out, and the next datagram back
//! within the timeout, else the reply counts as lost.

pub mod kind;
pub use kind::Udp;

use std::cell::RefCell;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::stats::Outcome;

#[derive(Debug)]
pub struct Conn {
    socket: UdpSocket,
}

impl Conn {
    pub fn new(socket: UdpSocket) -> Conn {
        Conn { socket }
    }

    /// Sends one datagram. Replies that came after their step gave up on them are dropped
    /// first, so they are not taken for this one's.
    pub async fn send(
        &mut self,
        bytes: &[u8],
        scratch: &RefCell<Box<[u8]>>,
    ) -> Result<(), Outcome> {
        {
            let mut buf = scratch.borrow_mut();
            while self.socket.try_recv(&mut buf).is_ok() {}
        }
        match self.socket.send(bytes).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(Outcome::ConnectRefused)
            }
            Err(e) => Err(crate::protocol::net::io_outcome(&e)),
        }
    }

    /// The next datagram, into `scratch`: its length. `Lost` past `deadline`.
    pub async fn recv(
        &mut self,
        scratch: &RefCell<Box<[u8]>>,
        deadline: Instant,
    ) -> Result<usize, Outcome> {
        loop {
            match tokio::time::timeout_at(deadline, self.socket.readable()).await {
                Err(_) => return Err(Outcome::Lost),
                Ok(Err(e)) => return Err(crate::protocol::net::io_outcome(&e)),
                Ok(Ok(())) => {}
            }
            let mut buf = scratch.borrow_mut();
            match self.socket.try_recv(&mut buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                // An ICMP port-unreachable from an earlier datagram: nobody listens there.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(Outcome::ConnectRefused);
                }
                Err(e) => return Err(crate::protocol::net::io_outcome(&e)),
            }
        }
    }
}
