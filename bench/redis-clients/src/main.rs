//! Drives one Redis server with the `redis` crate or `fred` the way Stampede drives it with its
//! own RESP codec: N tasks on one current-thread runtime, each owning its own connection (a
//! `redis::aio::MultiplexedConnection`, or a `fred::clients::Client`, per task), in a closed
//! loop of GET or SET (a 100-byte value) for a fixed time, one command or a pipeline of P per
//! round trip, and every request's latency recorded into one HDR histogram (µs, 1 µs … 1 h,
//! 3 significant digits: Stampede's bounds). A pipeline's replies arrive together through these
//! APIs, so each of its P requests is recorded with the round trip's latency.
//!
//! Each client is given its best ordinary use: the command (or pipeline) object is built once
//! and reused where the API allows it (`redis::Cmd`, `redis::Pipeline`, `fred::clients::Pipeline`);
//! fred's single commands are built per call, as its API requires.
//!
//!   redis-clients-bench --client redis|fred --port P [--host 127.0.0.1] [--connections 50]
//!       [--duration 10] [--command get|set] [--pipeline 1] [--value-size 100]
//!       [--key key:bench] [--max-requests 500000000]
//!
//! Prints one line: `requests errors elapsed_s requests_per_s p50_ms p99_ms max_ms cpu_s`,
//! where cpu_s is this process's user + system CPU over the measured window (getrusage).
//! Only loopback hosts are accepted.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Redis,
    Fred,
}

#[derive(Clone, Copy, PartialEq)]
enum Command {
    Get,
    Set,
}

struct Opts {
    client: Client,
    host: String,
    port: u16,
    connections: usize,
    duration: Duration,
    command: Command,
    pipeline: usize,
    value_size: usize,
    key: String,
    max_requests: u64,
}

/// What every task of the one thread records into, like a Stampede worker's stats.
struct Stats {
    hist: RefCell<Histogram<u64>>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    /// Requests left before `max_requests`: the run is bounded in count as well as time.
    budget: Cell<u64>,
}

impl Stats {
    /// Records `n` requests that took `took`, `bad` of them failed; false once the budget is spent.
    fn record(&self, took: Duration, n: usize, bad: usize) -> bool {
        let us = (took.as_micros() as u64).max(1);
        let mut h = self.hist.borrow_mut();
        for _ in 0..n {
            h.saturating_record(us);
        }
        self.requests.set(self.requests.get() + n as u64);
        self.errors.set(self.errors.get() + bad as u64);
        let left = self.budget.get().saturating_sub(n as u64);
        self.budget.set(left);
        left > 0
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "usage: redis-clients-bench --client redis|fred --port P [--host 127.0.0.1] \
         [--connections 50] [--duration 10] [--command get|set] [--pipeline 1] \
         [--value-size 100] [--key key:bench] [--max-requests 500000000]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        client: Client::Redis,
        host: "127.0.0.1".into(),
        port: 0,
        connections: 50,
        duration: Duration::from_secs(10),
        command: Command::Get,
        pipeline: 1,
        value_size: 100,
        key: "key:bench".into(),
        max_requests: 500_000_000,
    };
    let mut client = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--client" => {
                client = Some(match v.as_str() {
                    "redis" => Client::Redis,
                    "fred" => Client::Fred,
                    _ => usage("--client is redis or fred"),
                })
            }
            "--host" => o.host = v,
            "--port" => o.port = num(&v) as u16,
            "--connections" => o.connections = num(&v) as usize,
            "--duration" => o.duration = Duration::from_secs_f64(v.parse().unwrap_or(0.0)),
            "--command" => {
                o.command = match v.as_str() {
                    "get" => Command::Get,
                    "set" => Command::Set,
                    _ => usage("--command is get or set"),
                }
            }
            "--pipeline" => o.pipeline = num(&v) as usize,
            "--value-size" => o.value_size = num(&v) as usize,
            "--key" => o.key = v,
            "--max-requests" => o.max_requests = num(&v),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    o.client = client.unwrap_or_else(|| usage("--client is required"));
    if o.port == 0 {
        usage("--port is required");
    }
    let ip: IpAddr = o
        .host
        .parse()
        .unwrap_or_else(|_| usage("--host must be an IP address"));
    if !ip.is_loopback() {
        usage("--host must be a loopback address");
    }
    if o.connections == 0 || o.pipeline == 0 || o.max_requests == 0 {
        usage("--connections, --pipeline and --max-requests must be positive");
    }
    if o.duration.is_zero() || o.duration > Duration::from_secs(600) {
        usage("--duration must be more than 0 and at most 600 seconds");
    }
    o
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let o = Rc::new(parse());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(o));
}

async fn run(o: Rc<Opts>) {
    let stats = Rc::new(Stats {
        hist: RefCell::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid"),
        ),
        requests: Cell::new(0),
        errors: Cell::new(0),
        budget: Cell::new(o.max_requests),
    });
    let value = Bytes::from(vec![b'x'; o.value_size]);

    // Every connection is open before the clock starts.
    let mut users = Vec::with_capacity(o.connections);
    match o.client {
        Client::Redis => {
            let url = format!("redis://{}:{}/", o.host, o.port);
            let mut opening = Vec::new();
            for _ in 0..o.connections {
                let url = url.clone();
                opening.push(tokio::task::spawn_local(async move {
                    let client = redis::Client::open(url).expect("a valid URL");
                    client
                        .get_multiplexed_async_connection()
                        .await
                        .expect("connect (redis crate)")
                }));
            }
            for c in opening {
                users.push(User::Redis(c.await.expect("connect task")));
            }
        }
        Client::Fred => {
            use fred::prelude::*;
            let url = format!("redis://{}:{}", o.host, o.port);
            let mut opening = Vec::new();
            for _ in 0..o.connections {
                let url = url.clone();
                opening.push(tokio::task::spawn_local(async move {
                    let config = Config::from_url(&url).expect("a valid URL");
                    let client = Builder::from_config(config).build().expect("fred client");
                    client.init().await.expect("connect (fred)");
                    client
                }));
            }
            for c in opening {
                users.push(User::Fred(c.await.expect("connect task")));
            }
        }
    }

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let end = start + o.duration;
    let mut tasks = Vec::with_capacity(users.len());
    for user in users {
        let (o, stats, value) = (o.clone(), stats.clone(), value.clone());
        tasks.push(tokio::task::spawn_local(async move {
            match user {
                User::Redis(con) => redis_user(con, &o, &stats, value, end).await,
                User::Fred(client) => fred_user(client, &o, &stats, value, end).await,
            }
        }));
    }
    for t in tasks {
        t.await.expect("user task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let h = stats.hist.borrow();
    let ms = |us: u64| us as f64 / 1000.0;
    let requests = stats.requests.get();
    println!(
        "{} {} {:.3} {:.0} {:.3} {:.3} {:.3} {:.3}",
        requests,
        stats.errors.get(),
        elapsed,
        requests as f64 / elapsed,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        cpu
    );
}

enum User {
    Redis(redis::aio::MultiplexedConnection),
    Fred(fred::clients::Client),
}

async fn redis_user(
    mut con: redis::aio::MultiplexedConnection,
    o: &Opts,
    stats: &Stats,
    value: Bytes,
    end: Instant,
) {
    let size = o.value_size;
    let mut cmd = match o.command {
        Command::Get => redis::cmd("GET"),
        Command::Set => redis::cmd("SET"),
    };
    cmd.arg(&o.key);
    if o.command == Command::Set {
        cmd.arg(&value[..]);
    }
    if o.pipeline == 1 {
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                return;
            }
            let bad = match o.command {
                Command::Get => match cmd.query_async::<Option<Vec<u8>>>(&mut con).await {
                    Ok(Some(v)) => usize::from(v.len() != size),
                    _ => 1,
                },
                Command::Set => usize::from(cmd.query_async::<()>(&mut con).await.is_err()),
            };
            if !stats.record(t0.elapsed(), 1, bad) {
                return;
            }
        }
    }
    let mut pipe = redis::pipe();
    for _ in 0..o.pipeline {
        pipe.add_command(cmd.clone());
    }
    let n = o.pipeline;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return;
        }
        let bad = match o.command {
            Command::Get => match pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut con).await {
                Ok(vs) if vs.len() == n => vs
                    .iter()
                    .filter(|v| v.as_ref().is_none_or(|v| v.len() != size))
                    .count(),
                _ => n,
            },
            Command::Set => match pipe.query_async::<Vec<redis::Value>>(&mut con).await {
                Ok(vs) if vs.len() == n => vs
                    .iter()
                    .filter(|v| !matches!(v, redis::Value::Okay))
                    .count(),
                _ => n,
            },
        };
        if !stats.record(t0.elapsed(), n, bad) {
            return;
        }
    }
}

async fn fred_user(
    client: fred::clients::Client,
    o: &Opts,
    stats: &Stats,
    value: Bytes,
    end: Instant,
) {
    use fred::prelude::*;
    let size = o.value_size;
    let key = o.key.as_str();
    if o.pipeline == 1 {
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break;
            }
            let bad = match o.command {
                Command::Get => match client.get::<Option<Bytes>, _>(key).await {
                    Ok(Some(v)) => usize::from(v.len() != size),
                    _ => 1,
                },
                Command::Set => usize::from(
                    client
                        .set::<(), _, _>(key, value.clone(), None, None, false)
                        .await
                        .is_err(),
                ),
            };
            if !stats.record(t0.elapsed(), 1, bad) {
                break;
            }
        }
    } else {
        // A fred pipeline holds its queued commands and can be sent again and again.
        let pipe = client.pipeline();
        for _ in 0..o.pipeline {
            let queued: Result<(), Error> = match o.command {
                Command::Get => pipe.get(key).await,
                Command::Set => pipe.set(key, value.clone(), None, None, false).await,
            };
            queued.expect("queue a command in a fred pipeline");
        }
        let n = o.pipeline;
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break;
            }
            let bad = match o.command {
                Command::Get => match pipe.all::<Vec<Option<Bytes>>>().await {
                    Ok(vs) if vs.len() == n => vs
                        .iter()
                        .filter(|v| v.as_ref().is_none_or(|v| v.len() != size))
                        .count(),
                    _ => n,
                },
                Command::Set => match pipe.all::<Vec<Value>>().await {
                    Ok(vs) if vs.len() == n => vs.iter().filter(|v| !v.is_ok()).count(),
                    _ => n,
                },
            };
            if !stats.record(t0.elapsed(), n, bad) {
                break;
            }
        }
    }
    let _ = client.quit().await;
}
