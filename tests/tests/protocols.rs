//! Every connection kind against `stampede target` (and a few misbehaving servers) on
//! 127.0.0.1: messages round-trip, checks pass and fail as they should, heartbeats arrive on
//! their interval, pushes are counted with their latency, TLS verifies (or is told not to),
//! and users whose target drops them reconnect with the error counted.

use std::time::Duration;

use stampede_runner::Summary;
use stampede_runner::results::StepSummary;
use stampede_runner::target::Target;
use stampede_tests::{run_yaml, serial};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lt(spec: &str) -> String {
    format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{spec}"
    )
}

fn step<'a>(s: &'a Summary, name: &str) -> &'a StepSummary {
    s.steps.iter().find(|x| x.name == name).unwrap_or_else(|| {
        panic!(
            "no step {name}; steps: {:?}",
            s.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

fn errors(s: &Summary, kind: &str) -> u64 {
    s.totals.errors_by_kind.get(kind).copied().unwrap_or(0)
}

async fn target() -> Target {
    Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn websocket_messages_round_trip_and_checks_pass_and_fail() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 4
  duration: 2s
  scenario:
    connection: {{ websocket: {{ url: "ws://{addr}/ws" }} }}
    steps:
      - name: hello
        send: {{ text: "hello {{{{ vu.id }}}} {{{{ iteration }}}}" }}
        expect: {{ contains: "hello", timeout: 2s }}
        extract: {{ who: {{ regex: "hello (\\d+)" }} }}
      - name: json
        send: {{ json: {{ type: "order", user: "{{{{ who }}}}" }} }}
        expect: {{ jsonPath: {{ "$.type": "order" }} }}
        check: {{ jsonPath: {{ "$.user": "0" }} }}
      - name: binary
        send: {{ base64: "AAEC/w==" }}
        expect: {{ base64: "AAEC/w==" }}
      - think: 20ms
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    let hello = step(&s, "hello");
    assert!(hello.requests > 20, "{} round trips", hello.requests);
    assert_eq!(hello.errors, 0, "{:?}", hello.outcomes);
    assert!(hello.latency.count > 0 && hello.latency.p99 < 1000.0);
    // The extracted user id comes back in the JSON; only user 0's passes the check.
    let json = step(&s, "json");
    assert!(json.checks_passed > 0, "user 0 passes");
    assert!(json.checks_failed > json.checks_passed, "users 1-3 fail");
    assert_eq!(json.outcomes.get("check_failed"), Some(&json.checks_failed));
    let binary = step(&s, "binary");
    assert_eq!(binary.errors, 0);
    assert_eq!(binary.requests, hello.requests);
    // What the users claim is what the target saw: every message sent was received there.
    let seen = t
        .stats
        .ws_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(seen, hello.requests + json.requests + binary.requests);
    assert_eq!(s.totals.connects, 4);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_websocket_expect_that_never_matches_times_out_without_losing_the_connection() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 1500ms
  scenario:
    connection: {{ websocket: {{ url: "ws://{addr}/ws" }} }}
    steps:
      - name: never
        send: {{ text: "ping" }}
        expect: {{ text: "pong", timeout: 300ms }}
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    let never = step(&s, "never");
    assert!(never.requests >= 4, "{}", never.requests);
    assert_eq!(never.outcomes.get("timeout"), Some(&never.requests));
    assert_eq!(s.totals.connects, 2, "a missing reply keeps the connection");
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn websocket_heartbeats_arrive_at_the_configured_interval() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 3
  duration: 1600ms
  scenario:
    connection:
      websocket: {{ url: "ws://{addr}/ws", heartbeat: {{ every: 200ms, text: "0" }} }}
    steps:
      - think: 10s
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    assert_eq!(s.totals.connects, 3);
    let log = t.stats.ws_log.lock().unwrap().clone();
    let mut by_conn: std::collections::BTreeMap<u64, Vec<tokio::time::Instant>> =
        Default::default();
    for (conn, at, payload) in &log {
        assert_eq!(payload, b"0", "only heartbeats are sent");
        by_conn.entry(*conn).or_default().push(*at);
    }
    assert_eq!(by_conn.len(), 3, "every user beats");
    for (conn, beats) in &by_conn {
        assert!(
            beats.len() >= 6,
            "connection {conn}: {} beats in ~1.6 s",
            beats.len()
        );
        // The median gap, not each one: a loaded machine may hold a beat back and the next
        // then keeps the schedule (a short gap after a long one).
        let mut gaps: Vec<Duration> = beats.windows(2).map(|p| p[1] - p[0]).collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        assert!(
            median >= Duration::from_millis(170) && median <= Duration::from_millis(230),
            "connection {conn}: beats a median {median:?} apart, want 200 ms (gaps {gaps:?})"
        );
    }
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn websocket_ping_heartbeats_are_answered_and_cost_no_messages() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 800ms
  scenario:
    connection:
      websocket: {{ url: "ws://{addr}/ws", heartbeat: {{ every: 100ms, ping: true }} }}
    steps:
      - think: 10s
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    assert_eq!(s.totals.errors, 0, "{:?}", s.totals.errors_by_kind);
    assert_eq!(
        t.stats
            .ws_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(s.totals.connects, 2);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_websocket_target_that_drops_connections_sees_users_reconnect_and_the_error_counted() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 3
  duration: 2s
  scenario:
    connection: {{ websocket: {{ url: "ws://{addr}/ws/drop?after=300ms" }} }}
    steps:
      - name: chat
        send: {{ text: "hi" }}
        expect: {{ text: "hi" }}
      - think: 50ms
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    assert!(
        s.totals.connects >= 9,
        "users reconnected: {} connects",
        s.totals.connects
    );
    assert!(
        errors(&s, "closed") + errors(&s, "reset") >= 6,
        "drops are counted: {:?}",
        s.totals.errors_by_kind
    );
    assert!(step(&s, "chat").outcomes.get("ok").copied().unwrap_or(0) > 20);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn websocket_listen_records_the_pushed_message_rate_and_push_latency() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 4
  duration: 1500ms
  scenario:
    connection: {{ websocket: {{ url: "ws://{addr}/ws/broadcast?every=50ms" }} }}
    steps:
      - name: room
        listen: {{ duration: 10s, timestampPath: "$.ts", timestampUnit: us }}
"#,
        addr = t.addr
    ));
    let s = run_yaml(&yaml).await;
    let room = step(&s, "room");
    // 4 users × 20 pushes/s × ~1.5 s.
    assert!(
        (90..=130).contains(&room.requests),
        "{} pushes received",
        room.requests
    );
    assert_eq!(
        room.latency.count, room.requests,
        "every push carried its time"
    );
    assert!(
        room.latency.p50 < 100.0,
        "push latency p50 {} ms",
        room.latency.p50
    );
    assert!(room.rate > 50.0, "{} pushes/s", room.rate);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn tls_is_verified_unless_the_scenario_skips_verification() {
    let _g = serial().await;
    let t = target().await;
    let tls = t.tls_addr.unwrap();
    let ws = |skip: bool| {
        lt(&format!(
            r#"  connections: 2
  duration: 700ms
  scenario:
    connection: {{ websocket: {{ url: "wss://localhost:{port}/ws", tls: {{ insecureSkipVerify: {skip} }} }} }}
    steps:
      - name: echo
        send: {{ text: "secret" }}
        expect: {{ text: "secret" }}
      - think: 20ms
"#,
            port = tls.port()
        ))
    };
    let s = run_yaml(&ws(true)).await;
    assert_eq!(s.totals.connects, 2);
    assert!(step(&s, "echo").requests > 10);
    assert_eq!(step(&s, "echo").errors, 0);
    // The self-signed certificate is refused when verification is on.
    let s = run_yaml(&ws(false)).await;
    assert_eq!(s.totals.connects, 0);
    assert!(errors(&s, "tls") >= 2, "{:?}", s.totals.errors_by_kind);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn http2_users_share_connections_by_streams_in_cleartext_and_over_tls() {
    let _g = serial().await;
    let t = target().await;
    let tls = t.tls_addr.unwrap();
    for (url, tls_opt) in [
        (format!("http://{}", t.addr), ""),
        (
            format!("https://localhost:{}", tls.port()),
            ", tls: { insecureSkipVerify: true }",
        ),
    ] {
        let before = t.stats.connections();
        let yaml = lt(&format!(
            r#"  connections: 8
  duration: 1s
  scenario:
    connection: {{ http2: {{ url: "{url}", streams: 4{tls_opt} }} }}
    steps:
      - name: order
        request: {{ method: POST, path: /orders, json: {{ n: "{{{{ iteration }}}}" }} }}
        check: {{ status: 200, jsonPath: {{ "$.ok": true }} }}
      - name: missing
        request: {{ path: /nope }}
      - think: 10ms
"#
        ));
        let s = run_yaml(&yaml).await;
        let order = step(&s, "order");
        assert!(order.requests > 50, "{url}: {} orders", order.requests);
        assert_eq!(order.errors, 0, "{url}: {:?}", order.outcomes);
        assert_eq!(order.checks_failed, 0);
        let missing = step(&s, "missing");
        assert_eq!(
            missing.outcomes.get("server_error"),
            Some(&missing.requests)
        );
        assert_eq!(missing.codes.get("404"), Some(&missing.requests), "{url}");
        // 8 users, 4 streams each: 2 connections (the engine's two workers hold 4 users each).
        assert_eq!(s.totals.connects, 2, "{url}");
        assert_eq!(
            t.stats.connections() - before,
            2,
            "{url}: the target saw 2 connections"
        );
    }
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn https_http1_requests_verify_and_run() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 700ms
  scenario:
    connection: {{ http: {{ url: "https://127.0.0.1:{port}", tls: {{ insecureSkipVerify: true }} }} }}
    steps:
      - name: home
        request: {{ path: / }}
        check: {{ status: 200, bodyContains: "hello" }}
"#,
        port = t.tls_addr.unwrap().port()
    ));
    let s = run_yaml(&yaml).await;
    let home = step(&s, "home");
    assert!(home.requests > 20);
    assert_eq!((home.errors, home.checks_failed), (0, 0));
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn tcp_replies_end_at_a_delimiter_a_length_prefix_or_a_regex() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 3
  duration: 1s
  scenario:
    connection: {{ tcp: {{ address: "{addr}" }} }}
    steps:
      - name: line
        send: {{ text: "PING {{{{ vu.id }}}}\n" }}
        expect: {{ delimiter: "\n" }}
        check: {{ bodyContains: "PING" }}
      - name: framed
        send: {{ base64: "AANhYmM=" }}
        expect: {{ lengthPrefix: 2 }}
        check: {{ bodyContains: "abc" }}
      - name: json-line
        send: {{ json: {{ ok: true, user: "{{{{ vu.id }}}}" }} }}
        expect: {{ regex: "\\}}" }}
        check: {{ jsonPath: {{ "$.ok": true }} }}
      - name: wrong
        send: {{ text: "abc\n" }}
        expect: {{ delimiter: "\n" }}
        check: {{ bodyContains: "xyz" }}
      - think: 10ms
"#,
        addr = t.tcp_addr.unwrap()
    ));
    let s = run_yaml(&yaml).await;
    for name in ["line", "framed", "json-line"] {
        let st = step(&s, name);
        assert!(st.requests > 30, "{name}: {}", st.requests);
        assert_eq!(
            (st.errors, st.checks_failed),
            (0, 0),
            "{name}: {:?}",
            st.outcomes
        );
        assert_eq!(st.checks_passed, st.requests);
    }
    let wrong = step(&s, "wrong");
    assert_eq!(wrong.outcomes.get("check_failed"), Some(&wrong.requests));
    assert_eq!(s.totals.connects, 3, "each user keeps its connection");
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn tcp_over_tls_round_trips() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 700ms
  scenario:
    connection: {{ tcp: {{ address: "127.0.0.1:{port}", tls: {{ insecureSkipVerify: true }} }} }}
    steps:
      - name: line
        send: {{ text: "over tls\n" }}
        expect: {{ delimiter: "\n" }}
        check: {{ bodyContains: "over tls" }}
"#,
        port = t.tls_addr.unwrap().port()
    ));
    let s = run_yaml(&yaml).await;
    let line = step(&s, "line");
    assert!(line.requests > 20);
    assert_eq!(
        (line.errors, line.checks_failed),
        (0, 0),
        "{:?}",
        s.totals.errors_by_kind
    );
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_tcp_target_that_drops_connections_sees_users_reconnect_and_the_error_counted() {
    let _g = serial().await;
    // Answers one line per connection, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                if let Ok(n) = s.read(&mut buf).await
                    && n > 0
                {
                    let _ = s.write_all(&buf[..n]).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 1s
  scenario:
    connection: {{ tcp: {{ address: "{addr}" }} }}
    steps:
      - name: line
        send: {{ text: "x\n" }}
        expect: {{ delimiter: "\n", timeout: 500ms }}
      - think: 50ms
"#
    ));
    let s = run_yaml(&yaml).await;
    let line = step(&s, "line");
    assert!(
        line.outcomes.get("ok").copied().unwrap_or(0) >= 6,
        "{:?}",
        line.outcomes
    );
    assert!(
        s.totals.connects >= 6,
        "users reconnect: {}",
        s.totals.connects
    );
    assert!(
        line.errors + errors(&s, "closed") >= 4,
        "drops counted: {:?}",
        s.totals.errors_by_kind
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn udp_datagrams_round_trip_and_lost_replies_are_counted() {
    let _g = serial().await;
    let t = target().await;
    let echo = lt(&format!(
        r#"  connections: 3
  duration: 1s
  scenario:
    connection: {{ udp: {{ address: "{addr}" }} }}
    steps:
      - name: dgram
        send: {{ text: "hello {{{{ vu.id }}}}" }}
        expect: {{ timeout: 500ms }}
        check: {{ bodyContains: "hello" }}
      - think: 10ms
"#,
        addr = t.udp_addr.unwrap()
    ));
    let s = run_yaml(&echo).await;
    let d = step(&s, "dgram");
    assert!(d.requests > 50, "{}", d.requests);
    assert_eq!((d.errors, d.checks_failed), (0, 0), "{:?}", d.outcomes);
    assert_eq!(
        t.stats
            .udp_datagrams
            .load(std::sync::atomic::Ordering::Relaxed),
        d.requests
    );
    // A socket that reads and never answers: every reply is lost, and users go on.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let lossy = lt(&format!(
        r#"  connections: 2
  duration: 1s
  scenario:
    connection: {{ udp: {{ address: "{silent_addr}" }} }}
    steps:
      - name: dgram
        send: {{ text: "anyone?" }}
        expect: {{ timeout: 200ms }}
"#
    ));
    let s = run_yaml(&lossy).await;
    let d = step(&s, "dgram");
    assert!(d.requests >= 6, "{}", d.requests);
    assert_eq!(d.outcomes.get("lost"), Some(&d.requests));
    drop(silent);
    t.shutdown();
}

/// A TCP listener that keeps every connection open and records when it was accepted and
/// from which address.
async fn recording_listener() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, std::net::SocketAddr)>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<_>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, peer)) = listener.accept().await {
            log.lock().unwrap().push((std::time::Instant::now(), peer));
            held.push(s);
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn connect_rate_paces_new_connections_across_the_test() {
    let _g = serial().await;
    let (addr, seen) = recording_listener().await;
    let yaml = lt(&format!(
        r#"  connections: 60
  connectRate: 100
  duration: 1500ms
  scenario:
    connection: {{ tcp: {{ address: "{addr}" }} }}
    steps:
      - think: 10s
"#
    ));
    let s = run_yaml(&yaml).await;
    assert_eq!(s.totals.connects, 60);
    let times: Vec<_> = seen.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(times.len(), 60);
    let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    // 60 connections at 100/s take 0.59 s at least; unpaced they come within milliseconds.
    assert!(
        spread >= Duration::from_millis(450) && spread <= Duration::from_secs(3),
        "60 connects spread over {spread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn users_take_the_source_addresses_in_turn() {
    let _g = serial().await;
    let (addr, seen) = recording_listener().await;
    let yaml = lt(&format!(
        r#"  connections: 6
  duration: 300ms
  runner: {{ sourceAddresses: ["127.0.0.2-127.0.0.4"] }}
  scenario:
    connection: {{ tcp: {{ address: "{addr}" }} }}
    steps:
      - think: 10s
"#
    ));
    let s = run_yaml(&yaml).await;
    assert_eq!(s.totals.connects, 6, "{:?}", s.totals.errors_by_kind);
    let mut by_ip: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, peer) in seen.lock().unwrap().iter() {
        *by_ip.entry(peer.ip().to_string()).or_default() += 1;
    }
    assert_eq!(
        by_ip,
        [("127.0.0.2", 2), ("127.0.0.3", 2), ("127.0.0.4", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    );
}

/// A TCP proxy to `upstream` that cuts every connection `after` it was opened, as a load
/// balancer or a crashing server would.
async fn cutting_proxy(upstream: std::net::SocketAddr, after: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ =
                    tokio::time::timeout(after, tokio::io::copy_bidirectional(&mut down, &mut up))
                        .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn http2_checks_fail_as_they_should_and_users_reconnect_when_the_connection_is_cut() {
    let _g = serial().await;
    let t = target().await;
    let proxy = cutting_proxy(t.addr, Duration::from_millis(300)).await;
    let yaml = lt(&format!(
        r#"  connections: 4
  duration: 1500ms
  scenario:
    connection: {{ http2: {{ url: "http://{proxy}", streams: 2 }} }}
    steps:
      - name: home
        request: {{ path: / }}
        check: {{ status: 200, bodyContains: "hello" }}
      - name: wrong
        request: {{ path: / }}
        check: {{ bodyContains: "goodbye" }}
      - think: 20ms
"#
    ));
    let s = run_yaml(&yaml).await;
    let home = step(&s, "home");
    let wrong = step(&s, "wrong");
    assert!(home.checks_passed > 20, "{:?}", home.outcomes);
    assert_eq!(wrong.checks_passed, 0);
    assert_eq!(
        wrong.outcomes.get("check_failed"),
        Some(&wrong.checks_failed)
    );
    // Cut every 300 ms for 1.5 s: the two groups' connections were reopened several times.
    assert!(s.totals.connects >= 6, "{} connects", s.totals.connects);
    assert!(
        home.errors + wrong.errors > 0,
        "cuts are counted: {:?}",
        home.outcomes
    );
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn udp_checks_fail_as_they_should() {
    let _g = serial().await;
    let t = target().await;
    let yaml = lt(&format!(
        r#"  connections: 2
  duration: 500ms
  scenario:
    connection: {{ udp: {{ address: "{addr}" }} }}
    steps:
      - name: json
        send: {{ json: {{ ok: true }} }}
        expect: {{ timeout: 500ms }}
        check: {{ jsonPath: {{ "$.ok": false }} }}
      - think: 10ms
"#,
        addr = t.udp_addr.unwrap()
    ));
    let s = run_yaml(&yaml).await;
    let json = step(&s, "json");
    assert!(json.requests > 10);
    assert_eq!(json.outcomes.get("check_failed"), Some(&json.requests));
    assert_eq!(json.checks_failed, json.requests);
    t.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_hold_test_has_an_error_ratio_over_its_connections() {
    let _g = serial().await;
    let t = target().await;
    // Users only hold their connections: the connects are the work, and the ratio is theirs.
    // Half the users connect to a path the target refuses (404): a failed connect each.
    let hold = |path: &str| {
        lt(&format!(
            "  connections: 4\n  duration: 1s\n  scenario:\n    connection: {{ websocket: {{ url: \"ws://{}{path}\" }} }}\n    steps:\n      - think: 300ms\n  thresholds: [\"errors < 1%\"]\n",
            t.addr
        ))
    };
    let s = run_yaml(&hold("/ws")).await;
    assert_eq!(
        (s.totals.requests, s.totals.errors),
        (0, 0),
        "{:?}",
        s.totals
    );
    assert!(s.totals.connects >= 4, "{:?}", s.totals);
    assert_eq!(s.thresholds[0].value, Some(0.0), "the hold has data");
    assert!(s.passed);
    let s = run_yaml(&hold("/no-such-path")).await;
    assert_eq!(s.totals.connects, 0);
    assert!(s.totals.connect_errors >= 4, "{:?}", s.totals);
    assert_eq!(s.thresholds[0].value, Some(1.0));
    assert!(!s.passed);
    t.shutdown();
}
