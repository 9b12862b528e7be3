#!/usr/bin/env python3
"""bench/connections.sh: idle WebSocket users with heartbeats, held by Stampede against
`stampede target`, stepping the number of users up; and the same hold side by side with a
peer (k6). Python 3.11, standard library only.

Scale-out, as a cluster would do it: every process here may open at most RLIMIT_NOFILE files
(20,000 on the developers' machines, hard), so users are spread over several runner processes
(`stampede-operator local --runners R`) and the target over several processes sharing one
port (SO_REUSEPORT). A source address and a destination allow ~28k connections (the
ephemeral port range), so users connect from many 127.x addresses (`runner.sourceAddresses`).

Per step it records: users connected, connect rate, runner and target RSS per connection,
CPU while holding (heartbeats included), and kernel socket memory (/proc/net/sockstat, and
the slab growth from /proc/meminfo). Every step is bounded in time; a step that cannot
connect everyone within its limit reports how far it got, and larger steps are skipped.
All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchlib import splice_block

START_MARK = "<!-- connections-bench:start -->"
END_MARK = "<!-- connections-bench:end -->"
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ------------------------------------------------------------------------------ /proc


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out


def sockstat() -> dict[str, int]:
    """TCP sockets in use and the pages of socket buffers (/proc/net/sockstat)."""
    out = {}
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()[1:]
            out = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
        if line.startswith("sockets:"):
            out["sockets_used"] = int(line.split()[2])
    return out


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class SocketWatch:
    """Polls /proc/net/sockstat every 20 ms: when TCP sockets start to rise and when both
    ends of every user's connection exist, whatever process made them."""

    def __init__(self):
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), sockstat().get("inuse", 0)))
            time.sleep(0.02)

    def connect_window(self, base: int, n: int) -> tuple[float, float] | None:
        """(first rise, all 2·n sockets there), if both happened."""
        first = next((t for t, v in self.samples if v > base + min(100, n // 10)), None)
        full = next((t for t, v in self.samples if v >= base + 2 * n * 0.999), None)
        return (first, full) if first is not None and full is not None else None

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_all(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def wait_gone(procs: list[subprocess.Popen], limit: float) -> None:
    end = time.time() + limit
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


def wait_sockets_below(n: int, limit: float) -> None:
    end = time.time() + limit
    while time.time() < end and sockstat().get("inuse", 0) > n:
        time.sleep(0.5)


# --------------------------------------------------------------------------- processes


class Targets:
    """`stampede target` processes sharing one WebSocket port (SO_REUSEPORT)."""

    def __init__(self, bin_dir: Path, count: int, port: int):
        self.port = port
        self.procs: list[subprocess.Popen] = []
        for _ in range(count):
            p = subprocess.Popen(
                [
                    str(bin_dir / "stampede"), "target", "--listen", f"127.0.0.1:{port}",
                    "--reuse-port", "--tls-listen", "off", "--tcp-listen", "off",
                    "--udp-listen", "off",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            line = p.stdout.readline().decode()
            if "listening" not in line:
                raise SystemExit(f"stampede target did not start: {line!r}")
            self.procs.append(p)
        self.base_rss = sum(rss_kib(p.pid) for p in self.procs)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stats(self) -> dict:
        """/stats of whichever process answers (SO_REUSEPORT picks one)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        kill_all(self.pids())
        wait_gone(self.procs, 30)


def scrape_active(port: int) -> int:
    """stampede_connections_active summed over the scrape."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1
    total = 0
    for line in text.splitlines():
        if line.startswith("stampede_connections_active"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def hold_yaml(n: int, runners: int, url: str, sources: str, duration: int, heartbeat: int,
              connect_rate: int | None) -> str:
    rate = f"  connectRate: {connect_rate}\n" if connect_rate else ""
    return f"""apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {{ name: hold-{n} }}
spec:
  runners: {runners}
  connections: {n}
  duration: {duration}s
{rate}  runner:
    sourceAddresses: ["{sources}"]
  scenario:
    connection:
      websocket:
        url: "{url}"
        connectTimeout: 60s
        heartbeat: {{ every: {heartbeat}s, text: "0" }}
    steps:
      - think: 1h
"""


# ------------------------------------------------------------------------------- steps


def agent_baseline(bin_dir: Path, tmp: Path) -> int:
    """RSS of one runner process holding 100 users: what each runner costs before its users."""
    port = free_port()
    t = Targets(bin_dir, 1, port)
    try:
        f = tmp / "baseline.yaml"
        f.write_text(
            hold_yaml(100, 1, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", 20, 30, None)
            .replace("  runners: 1\n", "")
        )
        p = subprocess.Popen(
            [str(bin_dir / "stampede"), "run", str(f), "--quiet", "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        end = time.time() + 30
        while time.time() < end:
            time.sleep(0.5)
            if t.stats().get("wsOpen", 0) >= 100:
                break
        time.sleep(2)
        rss = rss_kib(p.pid)
        p.kill()
        p.wait()
        return rss
    finally:
        t.stop()


def run_step(args, bin_dir: Path, tmp: Path, k: int, n: int, per_proc: int, base_agent: int) -> dict:
    runners = max(1, math.ceil(n / per_proc))
    # SO_REUSEPORT spreads connections by hash, not evenly: leave each target room.
    targets = max(1, math.ceil(n * 1.2 / per_proc))
    # The kernel picks a connection's source port by probing the ephemeral range for one
    # whose (source, destination) pair is free, from nearly the same place each time: the
    # more connections a source address already has to this target, the longer each connect
    # takes (perf: 88% of the machine in __inet_check_established at 20,000 per address).
    # A few thousand per address keeps connects cheap.
    addrs = max(1, math.ceil(n / args.per_source))
    first = ipaddress.IPv4Address(f"127.{k}.0.2")
    sources = f"{first}-{first + addrs - 1}"
    port = 20_000 + k
    mport = free_port()
    # Unpaced, tens of thousands of simultaneous SYNs overflow the targets' accept queues
    # (net.core.somaxconn 4096 here): the kernel drops them, and clients retry after 1, 3,
    # 7, 15, 31 s (ListenOverflows in /proc/net/netstat). One runner alone shows its own
    # connect rate unpaced; larger steps connect at a pace, as a real roll-out would.
    pace = args.connect_rate if args.connect_rate >= 0 else (0 if runners == 1 else 25_000)
    res = {
        "users": n, "runners": runners, "targets": targets, "sources": addrs,
        "connected": 0, "paced_at": pace or None,
    }
    log(f"step {n}: {runners} runner(s), {targets} target process(es), {addrs} source addresses {sources}")
    sock0 = sockstat()
    slab0 = meminfo("Slab")
    mem0 = meminfo("MemAvailable")
    t = Targets(bin_dir, targets, port)
    f = tmp / f"hold-{n}.yaml"
    f.write_text(hold_yaml(n, runners, f"ws://127.0.0.1:{port}/ws", sources,
                           args.connect_limit + args.hold + 30, args.heartbeat, pace or None))
    op = subprocess.Popen(
        [str(bin_dir / "stampede-operator"), "local", "-f", str(f), "--runners", str(runners),
         "--threads", "1", "--quiet", "--metrics-addr", f"127.0.0.1:{mport}",
         "--runner-bin", str(bin_dir / "stampede")],
        stdout=subprocess.DEVNULL, stderr=(tmp / f"operator-{n}.log").open("w"),
    )
    agents: list[int] = []
    watch = SocketWatch()
    try:
        started = time.time()
        first = None
        reached = None
        samples = []
        while time.time() - started < args.connect_limit:
            time.sleep(0.25)
            active = scrape_active(mport)
            now = time.time()
            if active > 0 and first is None:
                first = now
            samples.append((now - started, active))
            res["connected"] = max(res["connected"], active)
            if active >= n:
                reached = now
                break
            if op.poll() is not None:
                break
        agents = children(op.pid)
        window = watch.connect_window(sock0.get("inuse", 0), n)
        watch.close()
        if reached is None:
            log(f"step {n}: {res['connected']} of {n} connected within {args.connect_limit}s")
            res["complete"] = False
        else:
            res["complete"] = True
            if window is not None:
                secs = max(window[1] - window[0], 0.02)
                res["connect_seconds"] = round(secs, 2)
                res["connect_rate"] = round(n / secs)
                res["connect_rate_per_runner"] = round(res["connect_rate"] / runners)
                log(f"step {n}: TCP connections all up within {secs:.2f}s ({res['connect_rate']:,}/s); "
                    f"every WebSocket open {reached - started:.1f}s after start")
        # Settle, then measure memory; CPU over the hold, which spans a heartbeat period.
        time.sleep(3)
        agents = children(op.pid)
        cpu0 = {p: cpu_seconds(p) for p in agents + t.pids() + [op.pid]}
        t0 = time.time()
        rss_agents = sum(rss_kib(p) for p in agents)
        rss_targets = sum(rss_kib(p) for p in t.pids())
        rss_op = rss_kib(op.pid)
        sock = sockstat()
        slab = meminfo("Slab")
        mem = meminfo("MemAvailable")
        tstats = t.stats()
        time.sleep(args.hold)
        elapsed = time.time() - t0
        cpu = lambda ps: sum(cpu_seconds(p) - cpu0.get(p, 0.0) for p in ps)  # noqa: E731
        active_end = scrape_active(mport)
        conns = max(res["connected"], 1)
        res.update({
            "held_at_end": active_end,
            "runner_rss_mib": round(rss_agents / 1024, 1),
            "runner_kib_per_conn": round(rss_agents / conns, 2),
            "runner_kib_per_conn_incremental": round(max(rss_agents - runners * base_agent, 0) / conns, 2),
            "target_rss_mib": round(rss_targets / 1024, 1),
            "target_kib_per_conn": round(max(rss_targets - t.base_rss, 0) / conns, 2),
            "operator_rss_mib": round(rss_op / 1024, 1),
            "tcp_sockets": sock.get("inuse", 0) - sock0.get("inuse", 0),
            "sockstat_mem_kib_per_conn": round((sock.get("mem", 0) - sock0.get("mem", 0)) * PAGE / 1024 / conns, 3),
            "slab_kib_per_conn": round((slab - slab0) / conns, 2),
            "mem_used_kib_per_conn": round((mem0 - mem) / conns, 2),
            "cpu_runners_pct": round(100 * cpu(agents) / elapsed, 1),
            "cpu_targets_pct": round(100 * cpu(t.pids()) / elapsed, 1),
            "cpu_operator_pct": round(100 * cpu([op.pid]) / elapsed, 1),
            "target_ws_open_one_process": tstats.get("wsOpen"),
            "hold_seconds": round(elapsed, 1),
        })
        log(f"step {n}: {json.dumps(res)}")
    finally:
        watch.close()
        # Targets first: the runners then see the close and no client socket lingers in
        # TIME_WAIT on the source addresses.
        t.stop()
        kill_all(children(op.pid) or agents)
        op.kill()
        op.wait()
        wait_sockets_below(sock0.get("inuse", 0) + 1000, 90)
    return res


# ------------------------------------------------------------------------ connect rate


def connect_round(args, bin_dir: Path, tmp: Path, k: int, n: int) -> dict:
    """One runner process (`stampede run`, all its cores) connecting n users at once to one
    target process: how fast the sockets come up."""
    port = 21_000 + k
    t = Targets(bin_dir, 1, port)
    addrs = max(1, math.ceil(n / args.per_source))
    first = ipaddress.IPv4Address(f"127.{100 + k}.0.2")
    f = tmp / f"rate-{k}.yaml"
    f.write_text(hold_yaml(n, 1, f"ws://127.0.0.1:{port}/ws", f"{first}-{first + addrs - 1}",
                           60, args.heartbeat, None).replace("  runners: 1\n", ""))
    base = sockstat().get("inuse", 0)
    watch = SocketWatch()
    p = subprocess.Popen([str(bin_dir / "stampede"), "run", str(f), "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 60
        while time.time() < end and sockstat().get("inuse", 0) < base + 2 * n * 0.999:
            time.sleep(0.05)
        time.sleep(0.2)
        watch.close()
        window = watch.connect_window(base, n)
        res = {"users": n, "round": k}
        if window:
            secs = max(window[1] - window[0], 0.02)
            res.update(seconds=round(secs, 3), rate=round(n / secs))
        log(f"connect round {k}: {json.dumps(res)}")
        return res
    finally:
        watch.close()
        t.stop()
        p.kill()
        p.wait()
        wait_sockets_below(base + 1000, 60)


# ------------------------------------------------------------------------------- peers


def k6_script(path: Path, url: str, hold_ms: int, heartbeat_ms: int, n: int) -> None:
    path.write_text(f"""import ws from 'k6/ws';
export const options = {{
  scenarios: {{ hold: {{ executor: 'per-vu-iterations', vus: {n}, iterations: 1, maxDuration: '10m' }} }},
  summaryTrendStats: ['avg'],
}};
export default function () {{
  ws.connect('{url}', {{}}, function (socket) {{
    socket.on('open', function () {{
      socket.setInterval(function () {{ socket.send('0'); }}, {heartbeat_ms});
      socket.setTimeout(function () {{ socket.close(); }}, {hold_ms});
    }});
  }});
}}
""")


def hold_one(tool: str, bin_dir: Path, tmp: Path, n: int, hold: int, heartbeat: int, k6: str | None) -> dict:
    """One process holding n users against one target: RSS and CPU once all are open."""
    port = free_port()
    t = Targets(bin_dir, 1, port)
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        if tool == "stampede":
            f = tmp / f"one-{n}.yaml"
            f.write_text(hold_yaml(n, 1, url, "127.0.0.1", hold + 120, heartbeat, None)
                         .replace("  runners: 1\n", ""))
            cmd = [str(bin_dir / "stampede"), "run", str(f), "--quiet", "--threads", "1"]
            env = None
        else:
            f = tmp / f"k6-{n}.js"
            k6_script(f, url, (hold + 120) * 1000, heartbeat * 1000, n)
            cmd = [k6, "run", "--quiet", "--no-color", "--no-summary", str(f)]
            env = dict(os.environ, K6_NO_USAGE_REPORT="true", GOMAXPROCS="1")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        started = time.time()
        open_at = None
        while time.time() - started < 180:
            time.sleep(0.5)
            if t.stats().get("wsOpen", 0) >= n:
                open_at = time.time()
                break
            if p.poll() is not None:
                break
        res = {"tool": tool, "users": n, "open": t.stats().get("wsOpen", 0)}
        if open_at is not None:
            res["connect_seconds"] = round(open_at - started, 1)
            time.sleep(3)
            c0, t0 = cpu_seconds(p.pid), time.time()
            res["rss_kib"] = rss_kib(p.pid)
            time.sleep(hold)
            res["cpu_pct"] = round(100 * (cpu_seconds(p.pid) - c0) / (time.time() - t0), 2)
        p.kill()
        p.wait()
        return res
    finally:
        t.stop()


def peers(args, bin_dir: Path, tmp: Path) -> list[dict]:
    k6 = args.k6 or None
    rows = []
    for rnd in range(args.peer_rounds):
        for tool in ["stampede"] + (["k6"] if k6 else []):
            small = hold_one(tool, bin_dir, tmp, 100, 5, args.heartbeat, k6)
            big = hold_one(tool, bin_dir, tmp, args.peer_users, args.hold, args.heartbeat, k6)
            row = {"round": rnd + 1, "tool": tool, "small": small, "big": big}
            if "rss_kib" in small and "rss_kib" in big:
                row["kib_per_conn"] = round((big["rss_kib"] - small["rss_kib"]) / (args.peer_users - 100), 2)
            log(f"peer {json.dumps(row)}")
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------ report


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else round((xs[mid - 1] + xs[mid]) / 2, 2)


def markdown(steps: list[dict], peer_rows: list[dict], rounds: list[dict], meta: dict) -> str:
    out = [START_MARK, "", f"Measured {meta['date']} on {meta['machine']}; reproduce with:", "",
           f"    {meta['command']}", ""]
    if rounds:
        rates = [r["rate"] for r in rounds if "rate" in r]
        out.append(f"**Connect rate of one runner**: one `stampede run` process (both cores' worth of worker "
                   f"threads, sharing them with one target process) opening {rounds[0]['users']:,} WebSocket "
                   f"users at once, unpaced, from {math.ceil(rounds[0]['users'] / meta['per_source'])} source "
                   f"addresses; TCP sockets timed from /proc/net/sockstat: "
                   + ", ".join(f"{r:,}/s" for r in rates)
                   + (f" (median **{median(rates):,.0f}/s** of {len(rates)} rounds"
                      + (f"; {len(rounds) - len(rates)} round(s) could not be timed" if len(rates) < len(rounds) else "")
                      + ")." if rates else "; no round could be timed."))
        out.append("")
    out.append("| Users | Connected | Runners × targets | Source addresses | Connect rate (per runner) | "
               "Runner RSS / conn (incremental) | Target RSS / conn | CPU holding (runners + targets) | "
               "sockstat mem / conn | Slab / conn |")
    out.append("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for s in steps:
        rate = (f"{s['connect_rate']:,}/s ({s['connect_rate_per_runner']:,}/s)"
                if s.get("complete") and "connect_rate" in s else "—")
        if s.get("paced_at"):
            rate += f", paced at {s['paced_at']:,}/s"
        else:
            rate += ", unpaced"
        out.append(
            f"| {s['users']:,} | {s['connected']:,} | {s['runners']} × {s['targets']} | {s['sources']} | {rate} | "
            f"{s.get('runner_kib_per_conn', '—')} KiB ({s.get('runner_kib_per_conn_incremental', '—')} KiB) | "
            f"{s.get('target_kib_per_conn', '—')} KiB | "
            f"{s.get('cpu_runners_pct', '—')}% + {s.get('cpu_targets_pct', '—')}% | "
            f"{s.get('sockstat_mem_kib_per_conn', '—')} KiB | {s.get('slab_kib_per_conn', '—')} KiB |")
    out.append("")
    if peer_rows:
        out.append(f"Side by side, one process holding {meta['peer_users']:,} idle WebSocket users with a "
                   f"\"0\" heartbeat every {meta['heartbeat']} s against one `stampede target`, "
                   "interleaved; RSS at that count minus RSS at 100 users, CPU over the hold:")
        out.append("")
        out.append("| Tool | KiB per connection (median) | CPU % of a core holding (median) | Time to open all (median) |")
        out.append("|---|--:|--:|--:|")
        for tool in sorted({r["tool"] for r in peer_rows}):
            rs = [r for r in peer_rows if r["tool"] == tool]
            kib = median([r["kib_per_conn"] for r in rs if "kib_per_conn" in r])
            cpu = median([r["big"]["cpu_pct"] for r in rs if "cpu_pct" in r["big"]])
            sec = median([r["big"]["connect_seconds"] for r in rs if "connect_seconds" in r["big"]])
            out.append(f"| {tool} | {kib if kib is not None else '—'} | {cpu if cpu is not None else '—'} | "
                       f"{sec if sec is not None else '—'} s |")
        out.append("")
    out.append(END_MARK)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, type=Path)
    ap.add_argument("--steps", default="10000 50000 100000 250000 500000 1000000")
    ap.add_argument("--hold", type=int, default=35, help="seconds held after everyone is in")
    ap.add_argument("--heartbeat", type=int, default=30)
    ap.add_argument("--connect-limit", type=int, default=240, help="seconds a step may take to connect")
    ap.add_argument("--connect-rate", type=int, default=-1,
                    help="spec.connectRate for the steps (0: unpaced; default: unpaced with one runner, else 25000)")
    ap.add_argument("--per-process", type=int, default=15_000, help="connections per process")
    ap.add_argument("--per-source", type=int, default=2_000, help="connections per source address")
    ap.add_argument("--peer-users", type=int, default=5000)
    ap.add_argument("--peer-rounds", type=int, default=3)
    ap.add_argument("--rate-rounds", type=int, default=3, help="connect-rate rounds of one runner")
    ap.add_argument("--k6", default="", help="k6 binary ('' skips the peer)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--command", default="bench/connections.sh")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per_proc = min(args.per_process, hard - 2_000)
    log(f"open-file limit {hard} per process: {per_proc} connections per runner and target process")
    bin_dir = args.bin_dir
    results = {"steps": [], "peers": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sockstat0 = sockstat().get("inuse", 0)
        base_agent = agent_baseline(bin_dir, tmp)
        log(f"one runner with 100 users: {base_agent} KiB RSS")
        results["runner_baseline_kib"] = base_agent
        # First, on a quiet machine: tearing down a million sockets keeps the kernel busy
        # for a minute afterwards, which would slow any connect measured then.
        results["rounds"] = [
            connect_round(args, bin_dir, tmp, r + 1, min(per_proc, 15_000))
            for r in range(args.rate_rounds)
        ]
        args.out.write_text(json.dumps(results, indent=2))
        for k, n in enumerate(int(x) for x in args.steps.split()):
            step = run_step(args, bin_dir, tmp, k + 1, n, per_proc, base_agent)
            results["steps"].append(step)
            args.out.write_text(json.dumps(results, indent=2))
            if not step.get("complete"):
                log(f"stopping: step {n} did not complete")
                break
        if not args.no_peers:
            # Peers after the ladder, on a machine that has finished tearing it down.
            wait_sockets_below(sockstat0 + 1000, 120)
            quiet_by = time.time() + 90
            while sockstat().get("tw", 0) > 1000 and time.time() < quiet_by:
                time.sleep(1)
            results["peers"] = peers(args, bin_dir, tmp)
            args.out.write_text(json.dumps(results, indent=2))
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores ({cpu}), {meminfo('MemTotal') // 1024 // 1024} GiB",
        "command": args.command,
        "peer_users": args.peer_users,
        "heartbeat": args.heartbeat,
    }
    meta["per_source"] = args.per_source
    section = markdown(results["steps"], results["peers"], results.get("rounds", []), meta)
    print(section)
    if args.md:
        splice_block(Path(args.md), section, START_MARK, END_MARK)


if __name__ == "__main__":
    main()
