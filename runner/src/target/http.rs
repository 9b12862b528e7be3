//! The target's HTTP endpoints (HTTP/1.1 and HTTP/2 alike, through hyper): the demo shop
//! the quickstart drives and the endpoints tests use to misbehave on purpose.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::stats::TargetStats;

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("static parts are valid")
}

fn json(status: StatusCode, v: serde_json::Value) -> Resp {
    reply(status, "application/json", v.to_string())
}

const SECRET: &str = "stampede-demo-target";

fn sign(user: &str) -> String {
    // A demo token, verifiable without shared state: not security, just a stateful-looking flow.
    let mut h = std::hash::DefaultHasher::new();
    (SECRET, user).hash(&mut h);
    format!("{user}.{:016x}", h.finish())
}

fn verify(token: &str) -> Option<&str> {
    let (user, _) = token.rsplit_once('.')?;
    (sign(user) == token).then_some(user)
}

pub async fn handle(req: Request<Incoming>, stats: Arc<TargetStats>) -> Result<Resp, Infallible> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (&method, segs.as_slice()) {
        (_, [""]) => reply(StatusCode::OK, "text/plain", "hello from stampede target\n"),
        (_, ["bytes", n]) => match n.parse::<usize>() {
            Ok(n) if n <= 16 << 20 => {
                reply(StatusCode::OK, "application/octet-stream", vec![b'x'; n])
            }
            _ => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "bytes/{n}: n up to 16777216\n",
            ),
        },
        (_, ["delay", ms]) => match ms.parse::<u64>() {
            Ok(ms) if ms <= 60_000 => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply(StatusCode::OK, "text/plain", format!("waited {ms}ms\n"))
            }
            _ => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "delay/{ms}: ms up to 60000\n",
            ),
        },
        (_, ["status", code]) => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(s) => reply(s, "text/plain", format!("status {}\n", s.as_u16())),
            None => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "status/{code}: 100-999\n",
            ),
        },
        (_, ["echo"]) => {
            let ct = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let body = read_body(req).await;
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", ct)
                .body(Full::new(body))
                .unwrap_or_else(|_| reply(StatusCode::OK, "application/octet-stream", ""))
        }
        (&Method::POST, ["login"]) => {
            let body = read_body(req).await;
            let user = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("user").and_then(|u| u.as_str()).map(str::to_string));
            match user {
                Some(u) if !u.is_empty() && !u.contains('.') => json(
                    StatusCode::OK,
                    serde_json::json!({ "token": sign(&u), "user": u }),
                ),
                _ => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": "send {\"user\": \"name\"}" }),
                ),
            }
        }
        (_, ["me"]) => {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(verify) {
                Some(u) => json(StatusCode::OK, serde_json::json!({ "user": u })),
                None => json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({ "error": "bad or missing token" }),
                ),
            }
        }
        (&Method::POST, ["orders"]) => {
            let _ = read_body(req).await;
            let id = stats.orders.fetch_add(1, Ordering::Relaxed) + 1;
            json(
                StatusCode::OK,
                serde_json::json!({ "ok": true, "order": { "id": id } }),
            )
        }
        (_, ["stats"]) => json(
            StatusCode::OK,
            serde_json::json!({
                "connections": stats.connections(),
                "requests": stats.requests(),
                "orders": stats.orders.load(Ordering::Relaxed),
                "wsOpen": stats.ws_open.load(Ordering::Relaxed),
                "wsConnections": stats.ws_connections.load(Ordering::Relaxed),
                "wsMessages": stats.ws_messages.load(Ordering::Relaxed),
                "tcpConnections": stats.tcp_connections.load(Ordering::Relaxed),
                "udpDatagrams": stats.udp_datagrams.load(Ordering::Relaxed),
            }),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    Ok(resp)
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    match http_body_util::Limited::new(req.into_body(), 16 << 20)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    }
}
