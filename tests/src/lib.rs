//! Shared helpers for the workspace end-to-end tests: servers that record what they saw or
//! misbehave on purpose, a lock that keeps timing-sensitive tests from sharing the cores,
//! shortcuts to run a LoadTest written inline, and a private redis-server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use std::time::{Instant, SystemTime};

use stampede_runner::{EngineOptions, Run, Summary, load_str, prepare};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Timing assertions hold only when tests do not compete for the two cores: every test that
/// generates load holds this for its whole run. (tokio's Mutex works across the separate
/// runtimes of `#[tokio::test]`s.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// One request as the recording server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub conn: u64,
    pub at: Instant,
    pub wall: SystemTime,
    /// The request target (path and query) from the request line.
    pub path: String,
}

/// An HTTP/1.1 server that answers every request `200 ok` and records when each arrived
/// and on which connection.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((mut s, _)) = listener.accept().await {
                next += 1;
                let conn = next;
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(4096);
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        // Requests in these tests carry no body: each ends at a blank line.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let (at, wall) = (Instant::now(), SystemTime::now());
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                            buf.drain(..end + 4);
                            log.lock().unwrap().push(Seen {
                                conn,
                                at,
                                wall,
                                path,
                            });
                            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Recorder { addr, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// How a misbehaving server answers.
#[derive(Clone, Copy, Debug)]
pub enum Misbehave {
    /// Bytes that are not HTTP.
    Garbage,
    /// Half a response, then a close.
    CloseMidResponse,
    /// Reads the request and never answers.
    Silent,
    /// A response whose Content-Length promises more than it sends, then a close.
    ShortBody,
}

pub async fn misbehaving_server(how: Misbehave) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let reply: &[u8] = match how {
                    Misbehave::Garbage => b"\x00\xffSSH-2.0-not-http\r\n\r\n",
                    Misbehave::CloseMidResponse => b"HTTP/1.1 200 OK\r\ncontent-le",
                    Misbehave::ShortBody => {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"
                    }
                    Misbehave::Silent => {
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                        return;
                    }
                };
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Runs a LoadTest given as YAML text to the end and returns its summary.
pub async fn run_yaml(yaml: &str) -> Summary {
    start_yaml(yaml).finish(|_| {}).await
}

/// Starts a LoadTest given as YAML text.
pub fn start_yaml(yaml: &str) -> Run {
    let loaded =
        load_str(yaml, Path::new(".")).unwrap_or_else(|e| panic!("test file invalid: {e}"));
    let prepared = prepare(&loaded).unwrap_or_else(|e| panic!("test file does not prepare: {e}"));
    Run::start(prepared, EngineOptions::default()).expect("engine starts")
}

/// A minimal LoadTest: `spec` is the YAML of everything under `spec:` but the scenario's
/// connection, which points at `addr`.
pub fn loadtest(addr: SocketAddr, spec: &str) -> String {
    let spec = spec.replace("{{TARGET}}", &format!("http://{addr}"));
    format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n{spec}"
    )
}

/// A redis-server of a test's own, from the machine's binary on a free port (private, so
/// CLIENT LIST and CLIENT KILL see only that test's clients; it keeps nothing on disk), killed
/// on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn redis_server() -> RedisServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(std::env::temp_dir())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/install-test-deps.sh installs it)");
    let s = RedisServer { port, child };
    for _ in 0..100 {
        if cli(&s, &["PING"]).trim() == "PONG" {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server on {port} did not answer PING");
}

/// One command through redis-cli; its raw output.
pub fn cli(s: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &s.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Redis Cluster of a test's own: `masters` masters with `replicas` replicas each, from the
/// machine's redis-server on free ports, joined with `redis-cli --cluster create`, killed on
/// drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn redis_cluster(masters: usize, replicas: usize) -> RedisCluster {
    let dir = std::env::temp_dir().join(format!(
        "stampede-cluster-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let mut nodes = Vec::new();
    for _ in 0..masters * (1 + replicas) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("cluster node directory");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(node_dir.join("nodes.conf"))
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&node_dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/install-test-deps.sh installs it)");
        nodes.push(RedisServer { port, child });
    }
    for n in &nodes {
        wait_for(
            || cli(n, &["PING"]).trim() == "PONG",
            "a cluster node answers PING",
        );
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let created = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(
        created.status.success(),
        "redis-cli --cluster create: {}",
        String::from_utf8_lossy(&created.stdout)
    );
    let c = RedisCluster { nodes, dir };
    for n in &c.nodes {
        wait_for(
            || cli(n, &["CLUSTER", "INFO"]).contains("cluster_state:ok"),
            "every node sees the cluster ok",
        );
        // A replica can take over only once it has synced with its master.
        wait_for(
            || {
                let r = cli(n, &["INFO", "replication"]);
                r.contains("role:master") || r.contains("master_link_status:up")
            },
            "every replica has synced",
        );
    }
    c
}

impl RedisCluster {
    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| cli(n, &["ROLE"]).starts_with("master"))
            .collect()
    }
}

/// Polls `ok` every 50 ms for up to 10 s.
pub fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

/// Builds (if stale) the `stampede` binary and returns its path, as cargo reports it: for
/// tests that run the real command (its exit code, its own environment).
pub fn stampede_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "stampede-runner",
                "--bin",
                "stampede",
                "--message-format=json",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "the stampede binary builds");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["target"]["name"] == "stampede")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the stampede executable")
    })
}
