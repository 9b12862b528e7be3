//! Budgets over time: stage ramps, live connection changes (users added and retired
//! gracefully, `onStop` run once each), CSV data, and the quickstart example as shipped.

use std::collections::BTreeSet;
use std::time::Duration;

use stampede_runner::target::Target;
use stampede_tests::{Recorder, loadtest, run_yaml, serial, start_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_linear_rate_ramp_schedules_the_area_under_it() {
    let _g = serial().await;
    let rec = Recorder::start().await;
    // 0 → 1000/s over 2 s, then 1000 → 500/s over 1 s: 1000 + 750 iterations.
    let yaml = loadtest(
        rec.addr,
        "  connections: 40\n  rate: 0\n  stages:\n    - { duration: 2s, rate: 1000 }\n    - { duration: 1s, rate: 500 }\n  scenario:\n    connection: { http: { url: \"{{TARGET}}\" } }\n    steps:\n      - request: { path: / }\n",
    );
    let s = run_yaml(&yaml).await;
    assert!(
        (s.totals.iterations as f64 / 1750.0 - 1.0).abs() < 0.01,
        "iterations {}",
        s.totals.iterations
    );
    assert_eq!(rec.seen().len() as u64, s.totals.requests);
    assert_eq!(s.totals.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn live_connection_changes_add_and_retire_users_and_each_runs_on_stop_once() {
    let _g = serial().await;
    let rec = Recorder::start().await;
    let yaml = loadtest(
        rec.addr,
        "  connections: 6\n  duration: 3s\n  scenario:\n    connection: { http: { url: \"{{TARGET}}\" } }\n    steps:\n      - request: { path: /work }\n      - think: 20ms\n    onStop:\n      - request: { path: /bye }\n",
    );
    let run = start_yaml(&yaml);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut a = run.assignment();
    a.connections = 15;
    run.update(a.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let grown: BTreeSet<u64> = rec.seen().iter().map(|r| r.conn).collect();
    a.connections = 4;
    run.update(a).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let byes_after_shrink = rec.seen().iter().filter(|r| r.path == "/bye").count();
    let s = run.finish(|_| {}).await;

    assert_eq!(
        grown.len(),
        15,
        "users added live, each with its own connection"
    );
    assert_eq!(byes_after_shrink, 11, "the 11 retired users ran onStop");
    let byes = rec.seen().iter().filter(|r| r.path == "/bye").count();
    assert_eq!(byes, 15, "every user ran onStop exactly once");
    let last = s
        .series
        .iter()
        .rev()
        .find(|p| p.target_connections > 0)
        .unwrap();
    assert_eq!(last.target_connections, 4);
    assert_eq!(s.totals.connects, 15);
    assert_eq!(s.totals.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn csv_rows_feed_templates_in_sequence() {
    let _g = serial().await;
    let rec = Recorder::start().await;
    let dir = std::env::temp_dir().join(format!("stampede-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("users.csv"),
        "name,city\nann,oslo\nbob,rome\ncho,lima\n",
    )
    .unwrap();
    let yaml = loadtest(
        rec.addr,
        "  connections: 1\n  duration: 1s\n  scenario:\n    connection: { http: { url: \"{{TARGET}}\" } }\n    data:\n      - { name: users, csv: { file: users.csv }, pick: sequential }\n    steps:\n      - request: { path: \"/u/{{ users.name }}\", query: { city: \"{{ users.city }}\", vu: \"{{ vu.id }}\" } }\n      - think: 50ms\n",
    );
    let loaded = stampede_runner::load_str(&yaml, &dir).unwrap();
    let prepared = stampede_runner::prepare(&loaded).unwrap();
    let opts = stampede_runner::EngineOptions {
        threads: 1,
        ..Default::default()
    };
    let s = stampede_runner::Run::start(prepared, opts)
        .unwrap()
        .finish(|_| {})
        .await;
    std::fs::remove_dir_all(&dir).ok();
    let paths: Vec<String> = rec.seen().into_iter().map(|r| r.path).collect();
    assert!(paths.len() >= 6, "{paths:?}");
    let want = [
        "/u/ann?city=oslo&vu=0",
        "/u/bob?city=rome&vu=0",
        "/u/cho?city=lima&vu=0",
    ];
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(p, want[i % 3], "request {i}");
    }
    assert_eq!(s.totals.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_quickstart_example_passes_its_thresholds_against_the_built_in_target() {
    let _g = serial().await;
    let target = Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let text = std::fs::read_to_string(root.join("examples/quickstart.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:8080", &format!("http://{}", target.addr))
        .replace("duration: 10s", "duration: 3s");
    let s = run_yaml(&text).await;
    assert!(s.passed, "thresholds: {:?}", s.thresholds);
    assert_eq!(s.thresholds.len(), 4);
    assert_eq!(s.totals.errors, 0, "{:?}", s.totals.errors_by_kind);
    assert_eq!(
        s.steps.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["login", "home", "me", "checkout"]
    );
    target.shutdown();
}
