//! Neither end of Stampede's WebSocket panics on a peer's bytes: the user's connection fed
//! arbitrary bytes (or valid frames cut short or corrupted) after a correct handshake, and
//! the target fed arbitrary bytes after an upgrade request, each over a real loopback
//! socket, end in a message, a counted failure or a closed connection.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use stampede_runner::protocol::net::Endpoint;
use stampede_runner::protocol::websocket::client;
use stampede_runner::protocol::websocket::frame::{self, Opcode};
use stampede_runner::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers one handshake correctly, then writes `tail` in `chunk`-sized pieces and closes.
async fn serve_after_handshake(tail: Vec<u8>, chunk: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            .unwrap_or("")
            .trim()
            .to_string();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
            frame::accept_key(key.as_bytes())
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        for piece in tail.chunks(chunk.max(1)) {
            if s.write_all(piece).await.is_err() {
                return;
            }
        }
        let _ = s.shutdown().await;
    });
    addr
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint {
        addr,
        tls: None,
        connect_timeout: Duration::from_secs(2),
        sources: Arc::from(Vec::new()),
    }
}

/// Reads messages until the connection ends; the outcome it ended with.
fn client_reads(tail: Vec<u8>, chunk: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = serve_after_handshake(tail, chunk).await;
        let ep = endpoint(addr);
        let head = format!("GET /ws HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n");
        let mut out = Vec::new();
        let mut conn = client::open(&ep, 0, head.as_bytes(), &mut out, None)
            .await
            .expect("the handshake is valid");
        let scratch = RefCell::new(vec![0u8; 65_536].into_boxed_slice());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        for _ in 0..64 {
            match conn.recv(&scratch, None, Some(deadline), None).await {
                Ok(Some(m)) => {
                    let _ = (m.opcode, m.payload.len());
                }
                Ok(None) => unreachable!("no wake was given"),
                Err(_) => return,
            }
        }
    });
}

/// Valid server frames: text, binary, a ping, a fragmented text, a close.
fn valid_frames() -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_frame(&mut v, Opcode::Text, b"hello", None);
    frame::write_frame(&mut v, Opcode::Binary, &[0, 1, 2, 255], None);
    frame::write_frame(&mut v, Opcode::Ping, b"p", None);
    v.extend_from_slice(&[0x01, 0x02, b'a', b'b', 0x80, 0x01, b'c']);
    frame::write_frame(&mut v, Opcode::Close, &1000u16.to_be_bytes(), None);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_client_never_panics_on_arbitrary_bytes(tail in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..48) {
        client_reads(tail, chunk);
    }

    #[test]
    fn the_client_never_panics_on_valid_frames_cut_or_corrupted(
        cut in 0usize..40,
        flips in proptest::collection::vec((0usize..40, any::<u8>()), 0..4),
        chunk in 1usize..8,
    ) {
        let mut tail = valid_frames();
        for (at, byte) in flips {
            if let Some(b) = tail.get_mut(at) {
                *b = byte;
            }
        }
        tail.truncate(tail.len().saturating_sub(cut));
        client_reads(tail, chunk);
    }

    #[test]
    fn the_target_never_panics_on_arbitrary_client_bytes(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let mut s = tokio::net::TcpStream::connect(t.addr).await.unwrap();
            let req = "GET /ws HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
            s.write_all(req.as_bytes()).await.unwrap();
            let _ = s.write_all(&tail).await;
            let _ = s.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut sink)).await;
            assert!(sink.starts_with(b"HTTP/1.1 101"), "the upgrade was answered");
            // The target still serves after whatever it was sent.
            let mut again = tokio::net::TcpStream::connect(t.addr).await.unwrap();
            again.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await.unwrap();
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), again.read_to_end(&mut reply)).await;
            assert!(reply.starts_with(b"HTTP/1.1 200"));
            t.shutdown();
        });
    }
}

#[test]
fn valid_frames_from_the_server_are_read_in_order() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = serve_after_handshake(valid_frames(), 3).await;
        let ep = endpoint(addr);
        let head = format!("GET /ws HTTP/1.1\r\nhost: {addr}\r\n");
        let mut out = Vec::new();
        let mut conn = client::open(&ep, 0, head.as_bytes(), &mut out, None)
            .await
            .unwrap();
        let scratch = RefCell::new(vec![0u8; 65_536].into_boxed_slice());
        let mut got = Vec::new();
        loop {
            match conn.recv(&scratch, None, None, None).await {
                Ok(Some(m)) => got.push((m.opcode, m.payload.to_vec())),
                Ok(None) => unreachable!(),
                Err(o) => {
                    assert_eq!(o, stampede_runner::stats::Outcome::Closed);
                    break;
                }
            }
        }
        assert_eq!(
            got,
            vec![
                (Opcode::Text, b"hello".to_vec()),
                (Opcode::Binary, vec![0, 1, 2, 255]),
                (Opcode::Text, b"abc".to_vec()),
            ]
        );
    });
}
