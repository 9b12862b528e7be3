"""Locust user for bench/http.sh: GET / in a loop.

BENCH_RATE_PER_USER unset or 0: closed loop (no wait between requests).
BENCH_RATE_PER_USER=N: each user paces itself to N requests/s (constant_throughput), so
users x N is the fixed total rate.
FastHttpUser (geventhttpclient) is Locust's fastest client; the default HttpUser (requests)
is several times slower and would understate Locust.
"""

import os

from locust import FastHttpUser, constant, constant_throughput, task

_RATE = float(os.environ.get("BENCH_RATE_PER_USER") or 0)


class Bench(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    @task
    def root(self):
        self.client.get("/")
