//! The HTTP/1.1 client never panics on what a target sends: arbitrary bytes, and valid
//! responses cut short or corrupted, each over a real loopback socket, end in a response
//! or a counted failure.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use stampede_runner::protocol::http1::Conn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads the request, writes `reply` in `chunks`-sized pieces, closes.
async fn serve_once(reply: Vec<u8>, chunk: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        for piece in reply.chunks(chunk.max(1)) {
            if s.write_all(piece).await.is_err() {
                return;
            }
        }
        let _ = s.shutdown().await;
    });
    addr
}

fn exchange(reply: Vec<u8>, chunk: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = serve_once(reply.clone(), chunk).await;
        let mut conn = Conn::new(stampede_runner::protocol::net::NetStream::Tcp(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ));
        let res = tokio::time::timeout(
            Duration::from_secs(2),
            conn.exchange(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n", false),
        )
        .await
        .expect("the exchange ends: the server closes after its reply");
        if let Ok(r) = res {
            // Whatever was accepted must be made of the bytes sent.
            assert!(conn.body(&r).len() <= reply.len());
            assert!(r.received as usize <= reply.len());
        }
    });
}

const VALID: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\ntrailer: v\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(reply in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        exchange(reply, chunk);
    }

    #[test]
    fn valid_responses_cut_or_corrupted_never_panic(
        which in 0..VALID.len(),
        cut in 0usize..200,
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        chunk in 1usize..16,
    ) {
        let mut reply = VALID[which].to_vec();
        for (at, byte) in flips {
            if let Some(b) = reply.get_mut(at) {
                *b = byte;
            }
        }
        reply.truncate(cut.min(reply.len()).max(reply.len().saturating_sub(cut)));
        exchange(reply, chunk);
    }
}

#[test]
fn each_valid_response_is_read_whole() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (i, reply) in VALID.iter().enumerate() {
        rt.block_on(async {
            let addr = serve_once(reply.to_vec(), 3).await;
            let mut conn = Conn::new(stampede_runner::protocol::net::NetStream::Tcp(
                tokio::net::TcpStream::connect(addr).await.unwrap(),
            ));
            let r = conn
                .exchange(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n", false)
                .await;
            let r = r.unwrap_or_else(|f| panic!("response {i} failed: {f:?}"));
            let body = String::from_utf8_lossy(conn.body(&r)).into_owned();
            let want = ["hello", "helloabc", "", "until close"][i];
            assert_eq!(body, want, "response {i}");
        });
    }
}
