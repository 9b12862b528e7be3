//! The redis kind against a real redis-server, started here from the machine's binary on a
//! free port (private, so CLIENT LIST and CLIENT KILL see only this test's clients) and
//! stopped when the test ends.

use std::time::Duration;

use stampede_api::results::{StepSummary, Summary};
use stampede_tests::{
    RedisServer as Server, cli, redis_cluster, redis_server, run_yaml, serial, start_yaml, wait_for,
};

fn yaml(s: &Server, spec: &str) -> String {
    format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{}",
        spec.replace("{{URL}}", &format!("redis://127.0.0.1:{}", s.port))
    )
}

fn step<'a>(s: &'a Summary, name: &str) -> &'a StepSummary {
    s.steps
        .iter()
        .find(|st| st.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelines_checks_extracts_and_error_codes() {
    let _g = serial().await;
    let srv = redis_server();
    let s = run_yaml(&yaml(
        &srv,
        r#"  connections: 4
  duration: 1s
  scenario:
    connection: { redis: { url: "{{URL}}" } }
    steps:
      - name: set
        command: [SET, "user:{{ vu.id }}", "v{{ iteration }}"]
        check: { reply: "OK", replyType: status }
      - name: get
        command: [GET, "user:{{ vu.id }}"]
        extract: { v: reply }
        check: { replyType: string }
      - name: echo
        command: [ECHO, "{{ v }}"]
        check: { bodyContains: "v" }
      - name: wrong
        command: [GET, "user:{{ vu.id }}"]
        check: { reply: "never" }
      - name: missing
        command: [GET, "nobody:{{ vu.id }}"]
        check: { replyType: nil }
      - name: incr
        command: [INCR, "hits"]
        check: { replyType: integer, replyMin: 1 }
      - name: burst
        command: [INCR, "burst"]
        pipeline: 16
      - name: list
        command: [LRANGE, "none", "0", "-1"]
        extract: { first: { reply: 0 } }
      - name: typo
        command: [HGET, "hits", "x"]
      - name: value
        command: [SET, "value:{{ zipf(50, 1.1) }}", "{{ randomString(100) }}"]
        check: { reply: "OK" }
"#,
    ))
    .await;
    for ok in ["set", "get", "echo", "missing", "incr", "burst"] {
        let st = step(&s, ok);
        assert!(st.requests > 0, "{ok}");
        assert_eq!(st.errors, 0, "{ok}: {:?}", st.outcomes);
    }
    assert_eq!(step(&s, "set").checks_failed, 0);
    let wrong = step(&s, "wrong");
    assert_eq!(wrong.outcomes.get("check_failed"), Some(&wrong.requests));
    // Sixteen requests per pipeline, each with its own latency.
    let burst = step(&s, "burst");
    assert_eq!(burst.requests, 16 * step(&s, "incr").requests);
    let hits: u64 = cli(&srv, &["GET", "burst"]).trim().parse().unwrap();
    assert_eq!(
        hits, burst.requests,
        "every pipelined INCR reached the server"
    );
    // An empty list has no element 0: the extract fails, counted as such.
    let list = step(&s, "list");
    assert_eq!(list.outcomes.get("extract_failed"), Some(&list.requests));
    // HGET on a string key: WRONGTYPE, a server error with its prefix as code.
    let typo = step(&s, "typo");
    assert_eq!(typo.outcomes.get("server_error"), Some(&typo.requests));
    assert_eq!(typo.codes.get("WRONGTYPE"), Some(&typo.requests));
    assert_eq!(s.totals.connects, 4, "one connection per user");
    // zipf(50, 1.1) keys, each holding 100 random characters.
    assert_eq!(cli(&srv, &["STRLEN", "value:1"]).trim(), "100");
    let keys: usize = cli(&srv, &["KEYS", "value:*"]).lines().count();
    assert!((2..=50).contains(&keys), "{keys} value keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_is_one_named_client_and_survives_client_kill() {
    let _g = serial().await;
    let srv = redis_server();
    let run = start_yaml(&yaml(
        &srv,
        r#"  connections: 5
  rate: 200
  duration: 3s
  scenario:
    connection: { redis: { url: "{{URL}}/2", clientName: loadtest } }
    steps:
      - name: ping
        command: [PING]
        check: { reply: PONG }
"#,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let list = cli(&srv, &["CLIENT", "LIST"]);
    let ours: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("name=loadtest-"))
        .collect();
    assert_eq!(ours.len(), 5, "{list}");
    assert!(ours.iter().all(|l| l.contains(" db=2 ")), "{list}");
    let killed: u64 = cli(&srv, &["CLIENT", "KILL", "TYPE", "normal"])
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(killed >= 5, "killed {killed}");
    let s = run.finish(|_| {}).await;
    let ping = step(&s, "ping");
    assert!(
        s.totals.connects >= 10,
        "users reconnected: {}",
        s.totals.connects
    );
    assert!(
        ping.outcomes.get("ok").copied().unwrap_or(0) > 300,
        "{:?}",
        ping.outcomes
    );
    // At most the requests in flight at the kill failed.
    assert!(ping.errors <= 5, "{:?}", ping.outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evalsha_is_reloaded_once_after_noscript() {
    let _g = serial().await;
    let srv = redis_server();
    cli(&srv, &["SET", "stock:1", "1000000"]);
    let run = start_yaml(&yaml(
        &srv,
        r#"  connections: 2
  rate: 100
  duration: 2s
  scenario:
    connection: { redis: { url: "{{URL}}" } }
    onStart:
      - name: load-script
        command: [SCRIPT, LOAD, "return redis.call('DECR', KEYS[1])"]
        extract: { sha: reply }
    steps:
      - name: buy
        command: [EVALSHA, "{{ sha }}", "1", "stock:1"]
        check: { replyType: integer }
"#,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(cli(&srv, &["SCRIPT", "FLUSH"]).trim(), "OK");
    let s = run.finish(|_| {}).await;
    let buy = step(&s, "buy");
    assert!(buy.requests > 100, "{buy:?}");
    assert_eq!(
        buy.errors, 0,
        "NOSCRIPT was retried: {:?} {:?}",
        buy.outcomes, buy.codes
    );
    let left: u64 = cli(&srv, &["GET", "stock:1"]).trim().parse().unwrap();
    assert_eq!(1_000_000 - left, buy.requests, "every buy ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_server_error_with_the_reason() {
    let _g = serial().await;
    let srv = redis_server();
    cli(&srv, &["CONFIG", "SET", "requirepass", "right"]);
    let s = run_yaml(&yaml(
        &srv,
        r#"  connections: 1
  duration: 1s
  scenario:
    connection: { redis: { url: "redis://:wrong@127.0.0.1:PORT" } }
    steps:
      - command: [PING]
"#
        .replace("PORT", &srv.port.to_string())
        .as_str(),
    ))
    .await;
    assert!(
        s.totals
            .errors_by_kind
            .get("server_error")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(
        s.totals
            .error_reasons
            .iter()
            .any(|r| r.reason.contains("WRONGPASS")),
        "{:?}",
        s.totals.error_reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_record_every_published_message_with_its_push_latency() {
    let _g = serial().await;
    let srv = redis_server();
    let run = start_yaml(&yaml(
        &srv,
        r#"  connections: 3
  duration: 3s
  scenario:
    connection:
      redis:
        url: "{{URL}}"
        subscribe: { channels: [news, "user:{{ vu.id }}"], patterns: ["orders.*"] }
    steps:
      - name: pushed
        listen: { duration: 500ms, timestampPath: "$.ts" }
"#,
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let list = cli(&srv, &["CLIENT", "LIST"]);
    assert_eq!(
        list.lines()
            .filter(|l| l.contains(" sub=2 psub=1 "))
            .count(),
        3,
        "{list}"
    );
    // PUBLISH answers how many subscribers got the message: the deliveries to expect.
    let mut delivered = 0u64;
    for i in 0..40 {
        let channel = ["news", "orders.7", "user:1", "nobody"][i % 4];
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let n: u64 = cli(
            &srv,
            &["PUBLISH", channel, &format!(r#"{{"ts":{ms},"i":{i}}}"#)],
        )
        .trim()
        .parse()
        .unwrap();
        delivered += n;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        delivered,
        10 * 3 + 10 * 3 + 10,
        "3 news, 3 orders.*, 1 user:1 subscriber"
    );
    let s = run.finish(|_| {}).await;
    let pushed = step(&s, "pushed");
    assert_eq!(pushed.requests, delivered, "{:?}", pushed.outcomes);
    assert_eq!(pushed.errors, 0);
    assert_eq!(
        pushed.latency.count, delivered,
        "push latency from $.ts, for every message"
    );
    assert_eq!(s.totals.connects, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_followed_by_slot_and_pipelines_are_split_by_node() {
    let _g = serial().await;
    let cluster = redis_cluster(3, 0);
    let seed = &cluster.nodes[0];
    let s = run_yaml(&format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{}",
        r#"  connections: 4
  duration: 1s
  scenario:
    connection: { redis: { url: "redis://127.0.0.1:PORT?cluster=true" } }
    onStart:
      - name: load-script
        command: [SCRIPT, LOAD, "return redis.call('INCR', KEYS[1])"]
        extract: { sha: reply }
    steps:
      - name: set
        command: [SET, "user:{{ vu.id }}:{{ iteration }}", "{{ randomString(8) }}"]
        check: { reply: OK }
      - name: get
        command: [GET, "user:{{ vu.id }}:{{ iteration }}"]
        check: { replyType: string }
      - name: burst
        command: [INCR, "hits:{{ random(1, 1000) }}"]
        pipeline: 16
        check: { replyType: integer }
      - name: script
        command: [EVALSHA, "{{ sha }}", "1", "calls:{{ random(1, 100) }}"]
        check: { replyType: integer }
"#
        .replace("PORT", &seed.port.to_string())
    ))
    .await;
    for name in ["set", "get", "burst", "script"] {
        let st = step(&s, name);
        assert!(st.requests > 0, "{name}");
        assert_eq!(st.errors, 0, "{name}: {:?} {:?}", st.outcomes, st.codes);
    }
    // Keys spread over every master; each user holds at most one connection per master.
    for m in cluster.masters() {
        let keys: u64 = cli(m, &["DBSIZE"]).trim().parse().unwrap();
        assert!(keys > 0, "master {} holds keys", m.port);
    }
    assert!(
        (4..=4 * 3).contains(&s.totals.connects),
        "{} connections for 4 users on 3 masters",
        s.totals.connects
    );
    // Every pipelined INCR landed once, wherever its key lives.
    let mut hits = 0u64;
    for m in cluster.masters() {
        for key in cli(m, &["KEYS", "hits:*"]).lines() {
            hits += cli(m, &["GET", key]).trim().parse::<u64>().unwrap();
        }
    }
    assert_eq!(hits, step(&s, "burst").requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_through_its_moved_redirects() {
    let _g = serial().await;
    let cluster = redis_cluster(3, 1);
    let seed = &cluster.nodes[0];
    let run = start_yaml(&format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{}",
        r#"  connections: 4
  rate: 400
  duration: 4s
  scenario:
    connection: { redis: { url: "redis://127.0.0.1:PORT?cluster=true" } }
    steps:
      - name: set
        command: [SET, "k:{{ random(1, 10000) }}", "v"]
        check: { reply: OK }
      - name: burst
        command: [INCR, "n:{{ random(1, 10000) }}"]
        pipeline: 8
        check: { replyType: integer }
"#
        .replace("PORT", &seed.port.to_string())
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // A replica takes over its master's slots; the old master answers MOVED from then on.
    let replica = cluster
        .nodes
        .iter()
        .find(|n| cli(n, &["ROLE"]).starts_with("slave"))
        .expect("a replica");
    assert_eq!(cli(replica, &["CLUSTER", "FAILOVER"]).trim(), "OK");
    wait_for(
        || cli(replica, &["ROLE"]).starts_with("master"),
        "the replica is master",
    );
    let s = run.finish(|_| {}).await;
    let set = step(&s, "set");
    assert!(set.requests > 1000, "{set:?}");
    // MOVED is followed, never counted; at most the requests caught mid-failover fail.
    assert_eq!(set.codes.get("MOVED"), None, "{:?}", set.codes);
    assert!(
        set.errors * 100 <= set.requests,
        "{:?} {:?}",
        set.outcomes,
        set.codes
    );
    // Pipelined copies are split by node and each redirected on its own.
    let burst = step(&s, "burst");
    assert_eq!(burst.requests, 8 * set.requests, "{burst:?}");
    assert_eq!(burst.codes.get("MOVED"), None, "{:?}", burst.codes);
    assert!(
        burst.errors * 100 <= burst.requests,
        "{:?} {:?}",
        burst.outcomes,
        burst.codes
    );
    assert!(s.totals.connects >= 4, "{}", s.totals.connects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_cut_off_at_the_end_counts_every_copy_as_interrupted() {
    let _g = serial().await;
    let srv = redis_server();
    let run = start_yaml(&yaml(
        &srv,
        r#"  connections: 2
  duration: 30s
  scenario:
    connection: { redis: { url: "{{URL}}" } }
    steps:
      - name: burst
        command: [INCR, "n"]
        pipeline: 16
"#,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The server stops answering: every user has one pipeline of 16 out.
    assert_eq!(cli(&srv, &["CLIENT", "PAUSE", "3000", "ALL"]).trim(), "OK");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = run.stop_handle();
    stop.abort();
    let s = run.finish(|_| {}).await;
    let burst = step(&s, "burst");
    let cut = burst.outcomes.get("interrupted").copied().unwrap_or(0);
    assert_eq!(cut, 2 * 16, "{:?}", burst.outcomes);
    assert_eq!(
        burst.requests % 16,
        0,
        "whole pipelines only: {:?}",
        burst.outcomes
    );
    cli(&srv, &["CLIENT", "UNPAUSE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_client_is_named_after_its_run_and_user() {
    let _g = serial().await;
    let srv = redis_server();
    let run = start_yaml(&yaml(
        &srv,
        r#"  connections: 3
  duration: 2s
  scenario:
    connection: { redis: { url: "{{URL}}" } }
    steps:
      - { name: ping, command: [PING] }
      - think: 100ms
"#,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let list = cli(&srv, &["CLIENT", "LIST"]);
    let s = run.finish(|_| {}).await;
    let mut names: Vec<String> = list
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("name="))
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    names.sort();
    let expected: Vec<String> = (0..3)
        .map(|u| format!("stampede-{}-{u}", s.run_id))
        .collect();
    assert_eq!(names, expected, "{list}");
}
