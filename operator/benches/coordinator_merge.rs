//! What merging costs the operator: 100 simulated runners × 20 steps send cumulative
//! snapshots (real HDR histograms, V2+deflate, over the real gRPC session) once a second to a
//! coordinator in a separate process, which does what the operator does for a running test:
//! sums the runners' all-steps latency once a second for the series, merges every step for
//! status every 5 s, and renders `/metrics` every 5 s.
//! The coordinator process's CPU time (from /proc) and peak RSS are reported, so the
//! simulated runners' own work is not counted.
//!
//! `cargo bench -p stampede-operator --bench coordinator_merge` (add `-- --secs 60
//! --runners 100 --steps 20`); the figures go to BENCHMARKS.md. Goal: under 5% of one core,
//! under 100 MiB.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use stampede_api::Assignment;
use stampede_api::proto::coordinator_client::CoordinatorClient;
use stampede_api::proto::{self, RunnerMessage, Snapshot, StepSnapshot, runner_message};
use stampede_api::results::histogram_wire_bytes;
use stampede_api::stats::new_histogram;
use stampede_operator::coordinator::{Coordinator, Start, TestSpec};
use stampede_operator::metrics::Metrics;
use stampede_operator::results::Window;

struct Opts {
    runners: usize,
    steps: usize,
    secs: u64,
    /// Requests per step per runner per second: what each histogram grows by.
    per_second: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        runners: 100,
        steps: 20,
        secs: 40,
        per_second: 50,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = || -> u64 {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--runners" => o.runners = value() as usize,
            "--steps" => o.steps = value() as usize,
            "--secs" => o.secs = value(),
            "--per-second" => o.per_second = value(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn spec_yaml(steps: usize) -> String {
    let mut y = String::from(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: { name: bench }\nspec:\n  connections: 10000\n  rate: 100000\n  duration: 1h\n  scenario:\n    connection: { http: { url: \"http://127.0.0.1:1\" } }\n    steps:\n",
    );
    for s in 0..steps {
        y.push_str(&format!(
            "      - {{ name: step-{s:02}, request: {{ path: / }} }}\n"
        ));
    }
    y
}

/// The coordinator side, in its own process: prints its gRPC address, serves until killed.
fn serve(o: &Opts) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let yaml = spec_yaml(o.steps);
        let file = stampede_api::parse(&yaml).expect("bench spec parses");
        let spec = TestSpec {
            name: "bench".into(),
            run_id: String::new(),
            budget: Assignment::from_spec(&file.spec),
            max_connections: None,
            yaml,
        };
        let coordinator = Coordinator::new(
            spec,
            "token".into(),
            Start::AfterRelease(Duration::ZERO),
            o.runners,
        );
        let metrics = Metrics::new(Duration::from_secs(300));
        metrics.track("bench", "bench", coordinator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        let server = tonic::transport::Server::builder()
            .add_service(
                stampede_api::proto::coordinator_server::CoordinatorServer::new(
                    coordinator.clone(),
                ),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        let mut window = Window::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            // The 1 s series; status figures and a scrape every 5 s.
            std::hint::black_box(coordinator.overall());
            if n.is_multiple_of(5) {
                let _ = window.current(Instant::now(), || coordinator.merged());
                std::hint::black_box(metrics.render());
            }
        }
    });
}

/// One simulated runner: registers, then sends a growing cumulative snapshot every second.
async fn runner(addr: String, index: u32, o: Arc<Opts>, until: Instant) {
    let mut client = CoordinatorClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(RunnerMessage {
        msg: Some(runner_message::Msg::Register(proto::Register {
            loadtest: "bench".into(),
            index,
            token: "token".into(),
            session: format!("bench-{index}"),
        })),
    })
    .await
    .unwrap();
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("registers")
        .into_inner();
    tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let mut rng = fastrand::Rng::with_seed(index as u64);
    let mut hists: Vec<(Histogram<u64>, Histogram<u64>)> = (0..o.steps)
        .map(|_| (new_histogram(), new_histogram()))
        .collect();
    let mut seconds = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        tick.tick().await;
        seconds += 1;
        // Log-uniform latencies from 200 µs to 2 s: many distinct HDR buckets, as real ones.
        for (lat, svc) in hists.iter_mut() {
            for _ in 0..o.per_second {
                let v = (200.0 * 10f64.powf(4.0 * rng.f64())) as u64;
                lat.record(v).unwrap();
                svc.record(v * 9 / 10).unwrap();
            }
        }
        let n = seconds * o.per_second;
        let steps = hists
            .iter()
            .enumerate()
            .map(|(s, (lat, svc))| StepSnapshot {
                name: format!("step-{s:02}"),
                outcomes: [("ok".to_string(), n)].into(),
                bytes_sent: n * 120,
                bytes_received: n * 900,
                latency: histogram_wire_bytes(lat).into(),
                service: histogram_wire_bytes(svc).into(),
                ..Default::default()
            })
            .collect();
        let mut all = new_histogram();
        for (lat, _) in &hists {
            all.add(lat).unwrap();
        }
        let snap = Snapshot {
            revision: 1,
            latency_all: histogram_wire_bytes(&all).into(),
            iterations: n,
            connects: 100,
            active_connections: 100,
            steps,
            ..Default::default()
        };
        if tx
            .send(RunnerMessage {
                msg: Some(runner_message::Msg::Snapshot(snap)),
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // In clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    ticks / 100.0
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let o = opts();
    if std::env::args().any(|a| a == "--serve") {
        serve(&o);
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(std::env::args().skip(1))
        .arg("--serve")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening ").unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let o = Arc::new(o);
    let until = Instant::now() + Duration::from_secs(o.secs);
    // The first third warms up (connections, histograms filling); the rest is measured.
    let warm = Duration::from_secs(o.secs / 3);
    let measured = rt.block_on(async {
        let tasks: Vec<_> = (0..o.runners as u32)
            .map(|i| tokio::spawn(runner(addr.clone(), i, o.clone(), until)))
            .collect();
        tokio::time::sleep(warm).await;
        let (c0, t0) = (proc_cpu_seconds(pid), Instant::now());
        for t in tasks {
            t.await.unwrap();
        }
        (
            proc_cpu_seconds(pid) - c0,
            t0.elapsed().as_secs_f64(),
            proc_kib(pid, "VmRSS:"),
            proc_kib(pid, "VmHWM:"),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    let (cpu, wall, rss, hwm) = measured;
    println!(
        "coordinator: {} runners × {} steps, snapshots at 1 Hz ({} requests/step/runner/s), {:.0} s measured after {} s warm-up",
        o.runners,
        o.steps,
        o.per_second,
        wall,
        warm.as_secs()
    );
    println!(
        "cpu {:.2} s over {:.1} s = {:.1}% of one core; RSS {:.1} MiB now, {:.1} MiB peak",
        cpu,
        wall,
        cpu / wall * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
