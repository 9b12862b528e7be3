//! Every file in `examples/` runs as shipped against the built-in target (on free ports
//! instead of the documented ones, and for a few seconds instead of its full length) without
//! an error and passes its own thresholds. Latency limits are measured and printed but not
//! required: they are the example's advice for a real machine, and a debug build sharing two
//! cores with the target in CI once saw a 33 ms p99 against `p99(ping) < 20ms`.

use std::path::Path;

use stampede_api::threshold::Threshold;
use stampede_runner::target::Target;
use stampede_tests::{redis_server, run_yaml, serial};

/// The example with the target's real ports, and its length cut to about `secs` seconds
/// (stages keep their proportions).
fn shortened(text: &str, t: &Target, secs: f64) -> String {
    let text = text
        .replace("127.0.0.1:8080", &t.addr.to_string())
        .replace("127.0.0.1:8443", &t.tls_addr.unwrap().to_string())
        .replace("127.0.0.1:7000", &t.tcp_addr.unwrap().to_string())
        .replace("127.0.0.1:7001", &t.udp_addr.unwrap().to_string());
    let mut file = stampede_api::parse(&text).expect("the example parses");
    let spec = &mut file.spec;
    if spec.duration.is_some() {
        spec.duration = Some(stampede_api::Duration::from_std(
            std::time::Duration::from_secs_f64(secs),
        ));
    }
    let total: f64 = spec
        .stages
        .iter()
        .map(|s| s.duration.as_std().as_secs_f64())
        .sum();
    for s in &mut spec.stages {
        let d = s.duration.as_std().as_secs_f64() * secs / total;
        s.duration = stampede_api::Duration::from_std(std::time::Duration::from_secs_f64(d));
    }
    serde_norway::to_string(&file).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_example_runs_against_the_built_in_target_and_passes_its_non_latency_thresholds() {
    let _g = serial().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let target = Target::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        // Redis examples get a redis-server of their own instead of the machine's 6379.
        let redis = text.contains("redis://127.0.0.1:6379").then(redis_server);
        if let Some(r) = &redis {
            text = text.replace("127.0.0.1:6379", &format!("127.0.0.1:{}", r.port));
        }
        let text = shortened(&text, &target, 2.5);
        let s = run_yaml(&text).await;
        let name = path.file_name().unwrap().to_string_lossy();
        println!(
            "{name}: {} iterations, {} requests, {} errors, {} connects, verdict {}",
            s.totals.iterations, s.totals.requests, s.totals.errors, s.totals.connects, s.passed
        );
        assert!(!s.thresholds.is_empty(), "{name} has thresholds");
        for t in &s.thresholds {
            let parsed = Threshold::parse(&t.expression).unwrap();
            assert!(
                t.value.is_some(),
                "{name}: {} measured nothing",
                t.expression
            );
            if parsed.metric.is_latency() {
                if !t.passed {
                    println!(
                        "{name}: {} observed {:?} ms (latency: reported, not required here)",
                        t.expression, t.value
                    );
                }
            } else {
                assert!(t.passed, "{name}: thresholds {:#?}", s.thresholds);
            }
        }
        assert!(
            s.totals.requests + s.totals.connects > 0,
            "{name} did something"
        );
        assert_eq!(s.totals.errors, 0, "{name}: {:?}", s.totals.errors_by_kind);
        target.shutdown();
    }
}
