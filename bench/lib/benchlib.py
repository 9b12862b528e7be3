#!/usr/bin/env python3
"""Helpers for bench/http.sh (Python 3.11, standard library only).

Subcommands:
  free-port                      print a free TCP port on 127.0.0.1 (20000-32767, below the
                                 ephemeral range so client source ports never collide with it)
  wait-idle URL                  wait until nginx reports no client connection but our own
  watch --status URL --out F -- CMD...
                                 run CMD while polling nginx stub_status, write what the server
                                 counted (total and steady-state rate) to F; exit with CMD's code
  record ...                     parse one run's files into one JSON line of results.jsonl
  report --results F --meta F    print the Markdown section (medians across runs)
  splice --file F --section F    replace the text between the http-bench markers in F

Why stub_status: every tool counts requests its own way (completed, started, aborted at the
deadline...). nginx's own counter is the one figure that means the same thing for all of them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

START_MARK = "<!-- http-bench:start -->"
END_MARK = "<!-- http-bench:end -->"


# ---------------------------------------------------------------- nginx stub_status


class Stub:
    """Reads nginx stub_status over one keep-alive connection.

    Every scrape is itself a request nginx counts (the figure it returns includes the scrape),
    so `served()` subtracts the scrapes made so far.
    """

    def __init__(self, url: str):
        m = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
        if not m:
            raise SystemExit(f"bad status URL {url}")
        self.host, self.port, self.path = m.group(1), int(m.group(2)), m.group(3)
        self.conn: http.client.HTTPConnection | None = None
        self.scrapes = 0

    def raw(self) -> tuple[int, int]:
        """(active connections, total requests) as nginx reports them."""
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                self.conn.request("GET", self.path)
                body = self.conn.getresponse().read().decode()
                self.scrapes += 1
                active = int(re.search(r"Active connections:\s*(\d+)", body).group(1))
                nums = body.splitlines()[2].split()
                return active, int(nums[2])
            except (OSError, http.client.HTTPException, AttributeError, IndexError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def served(self) -> tuple[int, int]:
        """(active connections other than ours, requests counted minus our scrapes)."""
        active, total = self.raw()
        return max(active - 1, 0), total - self.scrapes

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def cmd_free_port(_: argparse.Namespace) -> int:
    import random

    ports = list(range(20000, 32768))
    random.shuffle(ports)
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            print(p)
            return 0
    print("no free port in 20000-32767", file=sys.stderr)
    return 1


def cmd_wait_idle(a: argparse.Namespace) -> int:
    """Waits for nginx to answer (just started) and to hold no client connection but ours:
    leftover connections of the previous tool would share the nginx worker with the next."""
    deadline = time.monotonic() + a.max_wait
    stub = Stub(a.url)
    try:
        while True:
            try:
                active, _ = stub.served()
            except (OSError, http.client.HTTPException, AttributeError, IndexError) as e:
                if time.monotonic() > deadline:
                    print(f"nginx status {a.url} unreachable: {e}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
                continue
            if active == 0:
                return 0
            if time.monotonic() > deadline:
                print(f"warning: nginx still has {active} client connection(s) after {a.max_wait}s", file=sys.stderr)
                return 0
            time.sleep(0.1)
    finally:
        stub.close()


def steady_window(samples: list[list[float]]) -> dict:
    """Requests per second while the tool was fully active.

    samples: [t, counted, active] every poll. The first and last polls in which the count moved
    bracket the run; the partial intervals at either end (start-up, connect, drain) are dropped,
    so the figure does not depend on how long a tool takes to start or exit.
    """
    moved = [i for i in range(1, len(samples)) if samples[i][1] > samples[i - 1][1]]
    if len(moved) < 3:
        return {"requests": None, "seconds": None, "rate": None}
    first, last = moved[0], moved[-1] - 1
    secs = samples[last][0] - samples[first][0]
    reqs = samples[last][1] - samples[first][1]
    return {"requests": reqs, "seconds": round(secs, 4), "rate": reqs / secs if secs > 0 else None}


def cmd_watch(a: argparse.Namespace) -> int:
    stub = Stub(a.status)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        raise SystemExit("watch: no command")
    t0 = time.monotonic()
    _, base = stub.served()
    samples = [[0.0, 0, 0]]
    # Own session so a timeout (or Ctrl-C of the script) can stop the whole chain
    # (time -> taskset'd tool -> its children) at once.
    proc = subprocess.Popen(cmd, start_new_session=True)

    def stop(signum=None, _frame=None):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if signum is not None:
            sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timed_out = False
    while proc.poll() is None:
        time.sleep(a.interval)
        t = time.monotonic() - t0
        active, counted = stub.served()
        samples.append([round(t, 4), counted - base, active])
        if t > a.timeout:
            timed_out = True
            print(f"watch: {cmd[0]} still running after {a.timeout}s: stopping it", file=sys.stderr)
            stop()
            break
    wall = time.monotonic() - t0
    code = proc.wait()
    active, counted = stub.served()
    samples.append([round(time.monotonic() - t0, 4), counted - base, active])
    stub.close()
    out = {
        "served": counted - base,
        "wall_s": round(wall, 4),
        "exit_code": code,
        "timed_out": timed_out,
        "poll_interval_s": a.interval,
        "steady": steady_window(samples),
        "samples": samples,
    }
    Path(a.out).write_text(json.dumps(out) + "\n")
    return code if code >= 0 else 128 - code


# ---------------------------------------------------------------- parsing tool output


def read_time(path: Path) -> dict:
    """GNU time -f '%e %U %S %M' (elapsed, user, sys, max RSS in KiB); last line wins because
    time prepends 'Command exited with non-zero status N'."""
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    for line in reversed(lines):
        parts = line.split()
        if len(parts) == 4:
            try:
                e, u, s, m = (float(x) for x in parts)
            except ValueError:
                continue
            return {"elapsed_s": e, "user_s": u, "sys_s": s, "cpu_s": round(u + s, 3), "rss_mb": round(m / 1024, 1)}
    raise ValueError(f"no GNU time line in {path}")


def parse_stampede(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    tot = s["totals"]
    steps = s.get("steps") or []
    # The service time (from the actual send) is what every other tool reports; `latency` is
    # from the intended start (open model), kept as co_* for the record.
    svc = steps[0]["service"] if steps else tot["latency"]
    lat = tot["latency"]
    anomalies = []
    if steps and sum(x["requests"] for x in steps) != tot["requests"]:
        anomalies.append("totals.requests != sum(steps[].requests)")
    series_reqs = sum(p.get("requests", 0) for p in s.get("series", []))
    if series_reqs != tot["requests"]:
        anomalies.append(f"sum(series[].requests)={series_reqs} != totals.requests={tot['requests']}")
    dur = s.get("durationSeconds") or 0
    return {
        "tool_requests": tot["requests"],
        "tool_rps": tot["requests"] / dur if dur else None,
        "tool_errors": tot["errors"],
        "dropped": tot.get("dropped", 0),
        "p50_ms": svc["p50"],
        "p99_ms": svc["p99"],
        "co_p50_ms": lat["p50"],
        "co_p99_ms": lat["p99"],
        "tool_duration_s": dur,
        "stampede_model": s.get("model"),
        "stampede_target_rate": s.get("targetRate"),
        "stampede_totals_rate": tot.get("rate"),
        "stampede_elapsed_s": s.get("elapsedSeconds"),
        "anomalies": anomalies,
    }


def parse_wrk(d: Path) -> dict:
    for line in (d / "stdout.txt").read_text().splitlines():
        if line.startswith("WRKJSON "):
            w = json.loads(line[len("WRKJSON "):])
            secs = w["duration_us"] / 1e6
            return {
                "tool_requests": w["requests"],
                "tool_rps": w["requests"] / secs if secs else None,
                "tool_errors": sum(w["errors"].values()),
                "p50_ms": w["p50_us"] / 1000,
                "p99_ms": w["p99_us"] / 1000,
                "tool_duration_s": secs,
            }
    raise ValueError("no WRKJSON line in wrk output")


def parse_oha(d: Path) -> dict:
    o = json.loads((d / "oha.json").read_text())
    codes = o.get("statusCodeDistribution") or {}
    errs = o.get("errorDistribution") or {}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    deadline = sum(v for k, v in errs.items() if "deadline" in k)
    pct = o.get("latencyPercentiles") or {}
    return {
        "tool_requests": sum(codes.values()),
        "tool_rps": o["summary"]["requestsPerSec"],
        # Requests still in flight when -z ends are aborted by design: not errors.
        "tool_errors": sum(codes.values()) - ok + sum(errs.values()) - deadline,
        "aborted_at_deadline": deadline,
        "p50_ms": pct["p50"] * 1000 if pct.get("p50") is not None else None,
        "p99_ms": pct["p99"] * 1000 if pct.get("p99") is not None else None,
        "tool_duration_s": o["summary"]["total"],
    }


def parse_k6(d: Path) -> dict:
    k = json.loads((d / "k6.json").read_text())
    m = k["metrics"]
    dur = m["http_req_duration"]["values"]
    failed = m.get("http_req_failed", {}).get("values", {})
    return {
        "tool_requests": int(m["http_reqs"]["values"]["count"]),
        "tool_rps": m["http_reqs"]["values"]["rate"],
        "tool_errors": int(failed.get("passes", 0)),  # http_req_failed counts failures as "passes"
        "dropped": int(m.get("dropped_iterations", {}).get("values", {}).get("count", 0)),
        "p50_ms": dur.get("med"),
        "p99_ms": dur.get("p(99)"),
        "tool_duration_s": k.get("state", {}).get("testRunDurationMs", 0) / 1000,
    }


def locust_percentile(hist: dict[float, int], total: int, q: float) -> float | None:
    """Locust's own method (stats.calculate_response_time_percentile) over its rounded buckets."""
    if total == 0:
        return None
    want = int(total * q)
    done = 0
    for rt in sorted(hist, reverse=True):
        done += hist[rt]
        if total - done <= want:
            return rt
    return None


def parse_locust(d: Path) -> dict:
    entries = json.loads((d / "locust.json").read_text())
    reqs = sum(e["num_requests"] for e in entries)
    fails = sum(e["num_failures"] for e in entries)
    hist: dict[float, int] = {}
    for e in entries:
        for k, v in e["response_times"].items():
            hist[float(k)] = hist.get(float(k), 0) + v
    start = min((e["start_time"] for e in entries), default=0)
    end = max((e["last_request_timestamp"] or 0 for e in entries), default=0)
    secs = end - start if end > start else None
    return {
        "tool_requests": reqs,
        "tool_rps": reqs / secs if secs else None,
        "tool_errors": fails,
        "p50_ms": locust_percentile(hist, reqs, 0.50),
        "p99_ms": locust_percentile(hist, reqs, 0.99),
        "tool_duration_s": secs,
    }


PARSERS = {"stampede": parse_stampede, "wrk": parse_wrk, "oha": parse_oha, "k6": parse_k6, "locust": parse_locust}


def cmd_record(a: argparse.Namespace) -> int:
    d = Path(a.dir)
    row: dict = {
        "test": a.test,
        "tool": a.tool,
        "round": a.round,
        "rate": a.rate,
        "duration_s": a.duration,
        "connections": a.connections,
        "dir": str(d),
        "anomalies": [],
    }
    problems = []
    try:
        srv = json.loads((d / "server.json").read_text())
        row.update(
            served=srv["served"],
            steady_rps=srv["steady"]["rate"],
            wall_s=srv["wall_s"],
            exit_code=srv["exit_code"],
            timed_out=srv["timed_out"],
        )
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"server count: {e}")
    try:
        row.update(read_time(d / "time.txt"))
    except (OSError, ValueError) as e:
        problems.append(f"time: {e}")
    try:
        parsed = PARSERS[a.tool](d)
        row["anomalies"] += parsed.pop("anomalies", [])
        row.update(parsed)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        problems.append(f"{a.tool} output: {type(e).__name__}: {e}")
    if row.get("served") is not None and row.get("cpu_s"):
        row["req_per_cpu_s"] = row["served"] / row["cpu_s"]
    if a.rate and row.get("served") is not None:
        row["expected"] = a.rate * a.duration
        row["rate_error"] = row["served"] / row["expected"] - 1
    # A tool's own count should agree with nginx within what can be in flight at the end.
    if row.get("tool_requests") is not None and row.get("served") is not None:
        row["count_diff"] = row["tool_requests"] - row["served"]
        if abs(row["count_diff"]) > max(a.connections, 0.001 * row["served"]):
            row["anomalies"].append(f"tool counted {row['tool_requests']} requests, nginx {row['served']}")
    if row.get("exit_code") not in (0, None):
        row["anomalies"].append(f"exit code {row['exit_code']}")
    row["problems"] = problems
    row["ok"] = not problems and not row.get("timed_out")
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    status = "ok" if row["ok"] else "FAILED: " + "; ".join(problems or ["timed out"])
    print(
        f"    {a.tool:<9} served {row.get('served', '?'):>9} "
        f"steady {fmt(row.get('steady_rps'), 0):>8}/s  cpu {fmt(row.get('cpu_s'), 2)}s  "
        f"rss {fmt(row.get('rss_mb'), 1)}MB  p50 {fmt(row.get('p50_ms'), 3)}ms p99 {fmt(row.get('p99_ms'), 3)}ms"
        + (f"  err {fmt(100 * row['rate_error'], 2)}%" if "rate_error" in row else "")
        + f"  [{status}]"
        + ("  (" + "; ".join(row["anomalies"]) + ")" if row["anomalies"] else "")
    )
    return 0


# ---------------------------------------------------------------- report


def fmt(v, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, float)) and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def med(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def load_meta(path: str) -> dict:
    meta = {}
    for line in Path(path).read_text().splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            meta[k] = v
    return meta


TOOL_ORDER = ["stampede", "wrk", "oha", "k6", "locust"]


def cmd_report(a: argparse.Namespace) -> int:
    meta = load_meta(a.meta)
    rows = [json.loads(l) for l in Path(a.results).read_text().splitlines() if l.strip()]
    tools = meta.get("tools", "").split()
    skipped = dict(x.split("=", 1) for x in meta.get("skipped", "").split("|") if "=" in x)
    threads = dict(x.split("=", 1) for x in meta.get("threads", "").split("|") if "=" in x)
    out: list[str] = []
    w = out.append
    runs, dur, conns = meta.get("runs"), meta.get("duration"), meta.get("connections")
    w(f"## HTTP: Stampede, wrk, oha, k6 and Locust against one nginx on loopback\n")
    w(f"Measured {meta.get('date')} by `{meta.get('command')}`: {meta.get('nproc')} CPU(s) "
      f"({meta.get('cpu')}), Linux {meta.get('kernel')}. {meta.get('pinning')} "
      f"{conns} connections, {dur} s per run, medians of {runs} interleaved run(s) "
      f"(round 1: every tool in turn, then round 2, …).\n")
    w("Target: " + meta.get("nginx", "nginx") + " with one worker process, `access_log off`, "
      "`keepalive_requests` unlimited, `GET /` answered by `return 200 \"hello\\n\"` (6-byte body); "
      "requests counted by nginx's `stub_status`.\n")

    # -------- max throughput
    tp = [r for r in rows if r["test"] == "throughput"]
    w("### Maximum throughput (closed loop)\n")
    w("| Tool | Client threads | Requests/s (nginx) | Requests/s (tool) | Client CPU s | Requests per client CPU-s | p50 ms | p99 ms | Peak RSS MB | Errors | Runs ok |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for t in [t for t in TOOL_ORDER if t in tools or t in skipped]:
        if t in skipped:
            w(f"| {t} | – | skipped: {skipped[t]} | | | | | | | | |")
            continue
        rs = [r for r in tp if r["tool"] == t]
        good = [r for r in rs if r["ok"]]
        w(f"| {t} | {threads.get(t, '?')} | {fmt(med(good, 'steady_rps'))} | {fmt(med(good, 'tool_rps'))} | "
          f"{fmt(med(good, 'cpu_s'), 2)} | {fmt(med(good, 'req_per_cpu_s'))} | {fmt(med(good, 'p50_ms'), 3)} | "
          f"{fmt(med(good, 'p99_ms'), 3)} | {fmt(med(good, 'rss_mb'), 1)} | {fmt(med(good, 'tool_errors'))} | {len(good)}/{len(rs)} |")
    w("")

    # -------- fixed rate
    rt = [r for r in rows if r["test"] == "rate"]
    if rt:
        w("### Rate accuracy at fixed rates (open model)\n")
        w("Rate error = requests nginx counted during the run ÷ (rate × duration) − 1.\n")
        w("| Rate/s | Tool | Served (nginx) | Expected | Rate error | Steady req/s (nginx) | p50 ms | p99 ms | Client CPU s | Peak RSS MB | Dropped / errors | Runs ok |")
        w("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for rate in sorted({r["rate"] for r in rt}):
            for t in [t for t in TOOL_ORDER if t in tools or t in skipped]:
                if t == "wrk":
                    w(f"| {fmt(rate)} | wrk | cannot pace (closed loop only) | | | | | | | | | |")
                    continue
                if t in skipped:
                    continue
                rs = [r for r in rt if r["tool"] == t and r["rate"] == rate]
                if not rs:
                    continue
                good = [r for r in rs if r["ok"]]
                err = med(good, "rate_error")
                w(f"| {fmt(rate)} | {t} | {fmt(med(good, 'served'))} | {fmt(med(good, 'expected'))} | "
                  f"{'–' if err is None else f'{100 * err:+.2f}%'} | {fmt(med(good, 'steady_rps'))} | "
                  f"{fmt(med(good, 'p50_ms'), 3)} | {fmt(med(good, 'p99_ms'), 3)} | {fmt(med(good, 'cpu_s'), 2)} | "
                  f"{fmt(med(good, 'rss_mb'), 1)} | {fmt(med(good, 'dropped'))} / {fmt(med(good, 'tool_errors'))} | {len(good)}/{len(rs)} |")
        w("")

    w("How to read it:\n")
    w("- *Requests/s (nginx)*: requests nginx counted between the first and the last 0.1 s poll of "
      "`stub_status` in which the count moved (start-up, connecting and draining excluded). "
      "*Requests/s (tool)*: the tool's own figure.")
    w("- *Requests per client CPU-s*: all requests nginx counted during the run ÷ (user + system CPU "
      "seconds of the client process, GNU `time`). *Peak RSS*: max resident set of the client process.")
    w("- p50/p99 are each tool's own figures, measured from the moment a request is sent "
      "(Stampede: `steps[].service`; its latency from the intended start is in the raw results as "
      "`co_p50_ms`/`co_p99_ms`; oha runs without `--latency-correction`). Locust rounds to whole ms.")
    w("- Thread fairness: every client is held to one thread of load generation ("
      + ", ".join(f"{k}: `{v}`" for k, v in threads.items())
      + (") and pinned to one CPU." if meta.get("pinning", "").startswith("nginx pinned") else ")."))
    w("- Medians are taken per column, so one row's figures may come from different runs.")
    w("- wrk has no rate option (closed loop only), so it is absent from the fixed-rate table. "
      "*Dropped*: iterations that never started. k6 drops an iteration that finds no idle VU; "
      "Stampede lets it wait up to 1 s for a free connection (the wait counts in its "
      "latency-from-intended) and drops it only then, or if it is still queued when the window "
      "closes. oha and Locust have no such count.")
    w(f"- Versions: {meta.get('versions')}.")
    w(f"- Raw per-run results: `{meta.get('results_dir')}` (not committed).")
    anomalies = [f"{r['test']} {r['tool']}{' @' + str(r['rate']) if r['rate'] else ''} round {r['round']}: "
                 + "; ".join(r["anomalies"] + r.get("problems", [])) for r in rows if r["anomalies"] or r.get("problems")]
    if anomalies:
        w("- Anomalies seen in individual runs:")
        for x in anomalies:
            w(f"  - {x}")
    print("\n".join(out))
    return 0


def splice_block(path: Path, block: str, start: str, end: str) -> None:
    """Replace the section from `start` to `end` (both marks included) with `block`, which
    carries its own marks, and keep the rest of the file; append it if absent."""
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def cmd_splice(a: argparse.Namespace) -> int:
    """Replace the marked section, keep the rest of the file; append the section if absent."""
    section = Path(a.section).read_text().rstrip("\n")
    splice_block(Path(a.file), f"{START_MARK}\n{section}\n{END_MARK}", START_MARK, END_MARK)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port").set_defaults(fn=cmd_free_port)
    s = sub.add_parser("wait-idle")
    s.add_argument("url")
    s.add_argument("--max-wait", type=float, default=10)
    s.set_defaults(fn=cmd_wait_idle)
    s = sub.add_parser("watch")
    s.add_argument("--status", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--interval", type=float, default=0.1)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_watch)
    s = sub.add_parser("record")
    s.add_argument("--tool", required=True, choices=sorted(PARSERS))
    s.add_argument("--test", required=True, choices=["throughput", "rate"])
    s.add_argument("--round", type=int, required=True)
    s.add_argument("--rate", type=float, default=0)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--connections", type=int, required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--results", required=True)
    s.set_defaults(fn=cmd_record)
    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--meta", required=True)
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("splice")
    s.add_argument("--file", required=True)
    s.add_argument("--section", required=True)
    s.set_defaults(fn=cmd_splice)
    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
