//! Scenario behaviour against real servers on 127.0.0.1: login → extract → use the token,
//! checks that pass and fail as they should, data sets, and targets that misbehave.

use stampede_runner::target::Target;
use stampede_tests::{Misbehave, loadtest, misbehaving_server, run_yaml, serial};

fn step<'a>(
    s: &'a stampede_runner::Summary,
    name: &str,
) -> &'a stampede_runner::results::StepSummary {
    s.steps
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_login_extract_use_token_flow_passes_its_checks() {
    let _g = serial().await;
    let target = Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = loadtest(
        target.addr,
        r#"  connections: 6
  duration: 2s
  scenario:
    connection: { http: { url: "{{TARGET}}" } }
    data:
      - name: users
        rows: [ { name: ann }, { name: bob }, { name: cho }, { name: dee }, { name: eve }, { name: fay } ]
        pick: unique
    onStart:
      - name: login
        request: { method: POST, path: /login, json: { user: "{{ users.name }}" } }
        extract: { token: "$.token", who: { header: content-type } }
        check: { status: 200, jsonPath: { "$.user": "ann" } }
    steps:
      - name: me
        request: { path: /me, headers: { Authorization: "Bearer {{ token }}" } }
        check: { status: 200, bodyContains: "\"user\"" }
      - name: order
        request: { method: POST, path: /orders, json: { user: "{{ users.name }}", n: "{{ iteration }}" } }
        extract: { orderId: "$.order.id" }
        check: { status: 200, jsonPath: { "$.ok": true } }
      - name: echo-order
        request: { method: POST, path: /echo, body: "order={{ orderId }}" }
        extract: { echoed: { regex: "order=(\\d+)" } }
        check: { bodyContains: "order=" }
      - think: 50ms
"#,
    );
    let s = run_yaml(&yaml).await;
    let login = step(&s, "login");
    assert_eq!(login.requests, 6);
    // Only ann's login matches `$.user == "ann"`: unique rows mean exactly one user is ann.
    assert_eq!(
        (login.checks_passed, login.checks_failed),
        (6 + 1, 5),
        "status checks pass, jsonPath once"
    );
    let me = step(&s, "me");
    assert!(me.requests > 50, "users looped: {}", me.requests);
    assert_eq!(me.errors, 0, "every token was accepted: {:?}", me.outcomes);
    assert_eq!(me.checks_failed, 0);
    let order = step(&s, "order");
    assert_eq!(order.errors, 0);
    let echo = step(&s, "echo-order");
    assert_eq!(
        echo.errors, 0,
        "the extracted id flowed into the next request: {:?}",
        echo.outcomes
    );
    target.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn failed_checks_and_error_statuses_are_counted_per_step_and_never_abort() {
    let _g = serial().await;
    let target = Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = loadtest(
        target.addr,
        r#"  connections: 3
  duration: 1s
  scenario:
    connection: { http: { url: "{{TARGET}}" } }
    steps:
      - name: bad-token
        request: { path: /me, headers: { Authorization: "Bearer forged.0000" } }
      - name: expected-404
        request: { path: /status/404 }
        check: { status: 404 }
      - name: wrong-body
        request: { path: / }
        check: { bodyContains: "goodbye" }
      - name: server-error
        request: { path: /status/503 }
      - name: slow
        request: { path: /delay/30 }
        check: { maxLatency: 5ms }
      - name: missing-field
        request: { path: /stats }
        extract: { nope: "$.does.not.exist" }
"#,
    );
    let s = run_yaml(&yaml).await;
    let it = s.totals.iterations;
    assert!(it > 5, "iterations went on after failures: {it}");
    let outcome = |name: &str, kind: &str| step(&s, name).outcomes.get(kind).copied().unwrap_or(0);
    let req = |name: &str| step(&s, name).requests;
    assert_eq!(outcome("bad-token", "server_error"), req("bad-token"));
    let code = |name: &str, code: &str| step(&s, name).codes.get(code).copied().unwrap_or(0);
    assert_eq!(code("bad-token", "401"), req("bad-token"));
    assert_eq!(
        step(&s, "expected-404").errors,
        0,
        "a listed status is not an error"
    );
    assert_eq!(outcome("wrong-body", "check_failed"), req("wrong-body"));
    assert_eq!(outcome("server-error", "server_error"), req("server-error"));
    assert_eq!(code("server-error", "503"), req("server-error"));
    assert_eq!(outcome("slow", "check_failed"), req("slow"));
    assert_eq!(
        outcome("missing-field", "extract_failed"),
        req("missing-field")
    );
    assert!(!s.totals.errors_by_kind.is_empty());
    target.shutdown();
}

async fn survive(how: Misbehave, expect: &str) {
    let addr = misbehaving_server(how).await;
    let yaml = loadtest(
        addr,
        r#"  connections: 4
  duration: 1500ms
  scenario:
    connection: { http: { url: "{{TARGET}}" } }
    steps:
      - name: poke
        request: { path: /, timeout: 200ms }
"#,
    );
    let s = run_yaml(&yaml).await;
    let poke = step(&s, "poke");
    let n = poke.outcomes.get(expect).copied().unwrap_or(0);
    println!(
        "{how:?}: {:?}, connects {}",
        poke.outcomes, s.totals.connects
    );
    assert!(
        n >= 4,
        "{how:?}: expected `{expect}` errors, got {:?}",
        poke.outcomes
    );
    assert_eq!(poke.errors, poke.requests, "{how:?}: nothing succeeded");
    assert!(
        s.totals.connects > 4 || matches!(how, Misbehave::Silent),
        "{how:?}: users reconnected"
    );
    // Each failed request is one failure of one: the reconnect after it is reported beside
    // the ratio (`connects`), not in its denominator (which read every timeout as 50%).
    assert_eq!(
        s.totals.error_ratio, 1.0,
        "{how:?}: {} errors, {} requests, {} connects",
        s.totals.errors, s.totals.requests, s.totals.connects
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_target_that_sends_garbage_is_counted_as_protocol_errors() {
    let _g = serial().await;
    survive(Misbehave::Garbage, "protocol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_target_that_closes_mid_response_is_counted_and_users_reconnect() {
    let _g = serial().await;
    survive(Misbehave::CloseMidResponse, "closed").await;
    survive(Misbehave::ShortBody, "closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_target_that_never_answers_is_counted_as_timeouts() {
    let _g = serial().await;
    survive(Misbehave::Silent, "timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_unreachable_target_is_counted_and_the_run_still_ends() {
    let _g = serial().await;
    // Bind then drop: nothing listens on this port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = loadtest(
        addr,
        "  connections: 3\n  rate: 50\n  duration: 1s\n  scenario:\n    connection: { http: { url: \"{{TARGET}}\" } }\n    steps:\n      - request: { path: / }\n",
    );
    let s = run_yaml(&yaml).await;
    assert_eq!(s.totals.requests, 0);
    assert!(
        s.totals
            .errors_by_kind
            .get("connect_refused")
            .copied()
            .unwrap_or(0)
            >= 3
    );
    assert!(
        s.totals.error_ratio > 0.99,
        "connect failures count as errors: {}",
        s.totals.error_ratio
    );
    assert!(
        s.totals.dropped > 0,
        "iterations with no connected user are dropped, not queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_refused_certificate_says_why_and_hints_at_insecure_skip_verify() {
    let _g = serial().await;
    let target = Target::start_with(stampede_runner::target::TargetConfig::all_on(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    let tls = target.tls_addr.expect("TLS is on");
    // The built-in target's certificate is self-signed: verified, it is refused.
    let yaml = loadtest(
        tls,
        "  connections: 2\n  rate: 20\n  duration: 1s\n  scenario:\n    connection: { http: { url: \"https://{{ADDR}}\" } }\n    steps:\n      - request: { path: / }\n",
    )
    .replace("{{ADDR}}", &tls.to_string());
    let s = run_yaml(&yaml).await;
    let tls_errors = s.totals.errors_by_kind.get("tls").copied().unwrap_or(0);
    assert!(tls_errors >= 2, "{:?}", s.totals.errors_by_kind);
    let reasons: Vec<&stampede_runner::results::ErrorReason> = s
        .totals
        .error_reasons
        .iter()
        .filter(|r| r.kind == "tls")
        .collect();
    assert!(
        !reasons.is_empty() && reasons.iter().map(|r| r.count).sum::<u64>() <= tls_errors,
        "{:?}",
        s.totals.error_reasons
    );
    assert!(
        reasons[0].reason.contains("certificate"),
        "rustls says why: {:?}",
        reasons[0]
    );
    let table = stampede_report::console::summary_table(&s);
    assert!(
        table.contains(&format!("tls ×{}: {}", reasons[0].count, reasons[0].reason))
            && table.contains("insecureSkipVerify: true"),
        "{table}"
    );
    let html = stampede_report::html::render(&s);
    assert!(
        html.contains("id=\"error-reasons\"") && html.contains("insecureSkipVerify"),
        "the report shows them too"
    );
    // Read back, the summary keeps them.
    let back: stampede_runner::Summary = serde_json::from_slice(&s.to_json()).unwrap();
    assert_eq!(back.totals.error_reasons, s.totals.error_reasons);
    target.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn templates_carry_one_run_id_per_run_and_compute_arithmetic() {
    let _g = serial().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let rec = stampede_tests::Recorder::start().await;
        let yaml = loadtest(
            rec.addr,
            "  connections: 3\n  duration: 1s\n  scenario:\n    connection: { http: { url: \"{{TARGET}}\" } }\n    steps:\n      - request: { path: \"/o/{{ run.id }}/{{ vu.id * 1000 + iteration }}/{{ now_ms() / 1000 }}\" }\n      - think: 100ms\n",
        );
        let s = run_yaml(&yaml).await;
        assert_eq!(s.totals.errors, 0);
        assert!(!s.run_id.is_empty());
        let seen = rec.seen();
        assert!(!seen.is_empty());
        for r in &seen {
            let parts: Vec<&str> = r.path.split('/').collect();
            assert_eq!(parts[2], s.run_id, "{}", r.path);
            let n: u64 = parts[3].parse().unwrap();
            let (vu, iteration) = (n / 1000, n % 1000);
            assert!(vu < 3 && iteration >= 1, "{}", r.path);
            let secs: u64 = parts[4].parse().unwrap();
            let wall = r
                .wall
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(secs.abs_diff(wall) <= 1, "{secs} vs {wall}");
        }
        ids.push(s.run_id);
    }
    assert_ne!(ids[0], ids[1], "each run has an id of its own");
}
