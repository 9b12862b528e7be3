//! How `stampede-operator local` ends and splits what it runs, checked where the load lands:
//! a recording HTTP server on 127.0.0.1 counts every request and keeps its path, so a
//! runner that outlives its coordinator, a row used twice or an iteration too many shows.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 server that answers `200 ok` (after `delay` for paths starting `/slow`),
/// counting requests and recording their paths.
struct Counter {
    addr: std::net::SocketAddr,
    served: Arc<AtomicU64>,
    paths: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl Counter {
    fn start(delay: Duration) -> Counter {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, p) = (served.clone(), paths.clone());
        rt.spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (served, paths) = (s.clone(), p.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                            if path.starts_with("/slow") {
                                tokio::time::sleep(delay).await;
                            }
                            served.fetch_add(1, Ordering::SeqCst);
                            paths.lock().unwrap().push(path);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Counter {
            addr,
            served,
            paths,
            _rt: rt,
        }
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

struct Operator {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Operator {
    fn start(file: &Path, args: &[&str], out: &Path) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stampede-operator"))
            .arg("local")
            .args(args)
            .arg("-f")
            .arg(file)
            .arg("--out")
            .arg(out)
            .arg("--runner-bin")
            .arg(common::runner_bin())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the operator starts");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("operator: {line}");
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Operator {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        if let Some(hit) = self.seen.iter().find(|l| l.contains(needle)) {
            return hit.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no line with {needle:?} within {within:?}; saw {:?}",
                    self.seen
                )
            });
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (bounded) for the exit; the exit code and every line printed.
    fn finish(mut self, within: Duration) -> (i32, Vec<String>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "the operator did not exit within {within:?}; saw {:?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end with the pipes.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

fn write(dir: &Path, body: &str) -> PathBuf {
    let file = dir.join("t.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{body}"
        ),
    )
    .unwrap();
    file
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out).expect("the summary was written")).unwrap()
}

/// Whether the target still receives requests: what it served across `quiet`.
fn still_loaded(target: &Counter, quiet: Duration) -> u64 {
    let before = target.served();
    std::thread::sleep(quiet);
    target.served() - before
}

#[test]
fn ctrl_c_stops_every_runner_drains_and_writes_the_merged_summary() {
    let target = Counter::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 4\n  rate: 100\n  duration: 60s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }} }}\n  thresholds: [\"errors < 1%\"]\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let mut op = Operator::start(&file, &["--runners", "2", "--threads", "1"], &out);
    op.wait_for("  2s ", Duration::from_secs(30));
    let interrupted = Instant::now();
    op.signal("-INT");
    let (code, lines) = op.finish(Duration::from_secs(20));
    let exited = interrupted.elapsed();
    assert_eq!(code, 0, "a clean early stop keeps its verdict: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("interrupted: stopping the runners"))
    );
    let s = summary(&out);
    let iterations = s["totals"]["iterations"].as_u64().unwrap();
    let duration = s["durationSeconds"].as_f64().unwrap();
    let rate = s["totals"]["rate"].as_f64().unwrap();
    println!(
        "stopped {exited:?} after Ctrl-C: {iterations} iterations over {duration:.2} s ({rate:.1}/s); the target served {}",
        target.served()
    );
    // The load window ends at the Ctrl-C (~2.x s), not after the drain.
    assert!((2.0..4.0).contains(&duration), "durationSeconds {duration}");
    assert!(
        (rate / 100.0 - 1.0).abs() < 0.15,
        "rate {rate}/s, planned 100/s"
    );
    assert_eq!(
        iterations,
        target.served(),
        "every request served is in the summary"
    );
    assert_eq!(
        still_loaded(&target, Duration::from_millis(1500)),
        0,
        "no runner goes on loading the target"
    );
}

#[test]
fn a_killed_coordinator_leaves_no_runner_loading_the_target() {
    let target = Counter::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 4\n  rate: 100\n  duration: 60s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }} }}\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let mut op = Operator::start(&file, &["--runners", "2", "--threads", "1"], &out);
    op.wait_for("  2s ", Duration::from_secs(30));
    op.signal("-KILL");
    let (code, _) = op.finish(Duration::from_secs(5));
    assert_eq!(code, -1, "killed by a signal");
    // Runners notice their parent is gone within a quarter second, then stop.
    std::thread::sleep(Duration::from_secs(1));
    let after = still_loaded(&target, Duration::from_millis(1500));
    println!("requests served 1–2.5 s after the coordinator was killed: {after}");
    assert_eq!(after, 0, "orphaned runners kept loading the target");
}

#[test]
fn a_second_ctrl_c_cuts_the_drain_short_and_counts_what_was_in_flight() {
    let target = Counter::start(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 2\n  duration: 60s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: slow, request: {{ path: /slow, timeout: 40s }} }}\n  thresholds: [\"errors < 1%\"]\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let mut op = Operator::start(&file, &["--runners", "2", "--threads", "1"], &out);
    op.wait_for("  2s ", Duration::from_secs(30));
    op.signal("-INT");
    op.wait_for("interrupted: stopping the runners", Duration::from_secs(5));
    // The drain is shown as it happens: a line a second while the requests are out.
    op.wait_for("  4s ", Duration::from_secs(5));
    op.signal("-INT");
    let (code, lines) = op.finish(Duration::from_secs(15));
    assert!(lines.iter().any(|l| l.contains("stopping at once")));
    assert_eq!(
        code, 99,
        "requests that never finished cannot pass: {lines:?}"
    );
    let s = summary(&out);
    let slow = &s["steps"][0];
    println!("cut off: {}", slow["outcomes"]);
    assert_eq!(slow["outcomes"]["interrupted"].as_u64(), Some(2), "{slow}");
    assert_eq!(s["totals"]["errorRatio"].as_f64(), Some(1.0));
}

#[test]
fn unique_rows_are_never_held_by_two_users_across_runners() {
    let target = Counter::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 4\n  duration: 1s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    data:\n      - name: users\n        rows: [ {{ name: ann }}, {{ name: bob }}, {{ name: cho }}, {{ name: dan }} ]\n        pick: unique\n    onStart:\n      - {{ name: login, request: {{ path: \"/login/{{{{ users.name }}}}/{{{{ vu.id }}}}\" }} }}\n    steps:\n      - think: 200ms\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let op = Operator::start(&file, &["--runners", "2", "--threads", "1"], &out);
    let (code, lines) = op.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{lines:?}");
    let mut logins: Vec<(String, String)> = target
        .paths()
        .iter()
        .filter_map(|p| p.strip_prefix("/login/"))
        .map(|p| {
            let (name, vu) = p.split_once('/').unwrap();
            (name.to_string(), vu.to_string())
        })
        .collect();
    logins.sort();
    println!("logins (row, user): {logins:?}");
    let names: Vec<&str> = logins.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ann", "bob", "cho", "dan"], "each row once");
    let mut users: Vec<&str> = logins.iter().map(|(_, u)| u.as_str()).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 4, "four users, each with a row of its own");
}

#[test]
fn every_runner_renders_the_same_run_id_and_the_summary_carries_it() {
    let target = Counter::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 4\n  duration: 1s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    onStart:\n      - {{ name: hello, request: {{ path: \"/run/{{{{ run.id }}}}/{{{{ vu.id }}}}\" }} }}\n    steps:\n      - think: 200ms\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let op = Operator::start(&file, &["--runners", "2", "--threads", "1"], &out);
    let (code, lines) = op.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{lines:?}");
    let run_id = summary(&out)["runId"].as_str().unwrap().to_string();
    let mut seen: Vec<(String, String)> = target
        .paths()
        .iter()
        .filter_map(|p| p.strip_prefix("/run/"))
        .map(|p| {
            let (run, vu) = p.split_once('/').unwrap();
            (run.to_string(), vu.to_string())
        })
        .collect();
    seen.sort();
    println!("run id {run_id}; (run, user) seen: {seen:?}");
    assert_eq!(seen.len(), 4, "each user said hello once");
    assert!(
        seen.iter().all(|(r, _)| *r == run_id),
        "one id on both runners"
    );
    let vus: std::collections::BTreeSet<&str> = seen.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(vus.len(), 4);
    assert!(
        lines.iter().any(|l| l.contains(&format!("(run {run_id})"))),
        "the console names the run: {lines:?}"
    );
}

#[test]
fn three_runners_run_exactly_the_planned_iterations() {
    let target = Counter::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            "  connections: 6\n  rate: 500\n  duration: 3s\n  scenario:\n    connection: {{ http: {{ url: \"http://{}\" }} }}\n    steps:\n      - {{ name: home, request: {{ path: / }} }}\n",
            target.addr
        ),
    );
    let out = dir.path().join("summary.json");
    let op = Operator::start(&file, &["--runners", "3", "--threads", "1"], &out);
    let (code, lines) = op.finish(Duration::from_secs(40));
    assert_eq!(code, 0, "{lines:?}");
    let s = summary(&out);
    let (iterations, dropped) = (
        s["totals"]["iterations"].as_u64().unwrap(),
        s["totals"]["dropped"].as_u64().unwrap(),
    );
    println!(
        "planned 1500: ran {iterations}, dropped {dropped}, the target served {}",
        target.served()
    );
    assert_eq!(iterations + dropped, 1500);
    assert_eq!(target.served(), iterations);
}

#[test]
fn more_runners_than_users_is_refused_as_spec_runners_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "  connections: 2\n  rate: 10\n  duration: 2s\n  scenario:\n    connection: { http: { url: \"http://127.0.0.1:9\" } }\n    steps:\n      - { name: home, request: { path: / } }\n",
    );
    let out = dir.path().join("summary.json");
    let op = Operator::start(&file, &["--runners", "5"], &out);
    let (code, lines) = op.finish(Duration::from_secs(20));
    assert_eq!(code, 1, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--runners 5: expected at most 2")),
        "{lines:?}"
    );
    assert!(!out.exists(), "nothing ran");
}
