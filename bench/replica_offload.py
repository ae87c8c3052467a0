"""Database CPU per read request on the primary and on a replica, without and with read replicas.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/unused .venv/bin/python bench/replica_offload.py

Starts a throwaway primary and a streaming replica (wallet_service/tests/servers.py), then the service
twice (without, then with WALLET_SERVICE_READ_REPLICA_URLS), and sends the same mix of GETs (info,
history, list, events) each time, adding up the CPU time of each cluster's server processes
(/proc, Linux only). Results in docs/SCALING.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("WALLET_SERVICE_SECRET_KEY", "bench-only-" + "x" * 40)

from wallet_service.tests.servers import PostgresCluster, ReplicaCluster, Server, request, signup

REQUESTS = 2000
THREADS = 4


def cluster_cpu_seconds(cluster: PostgresCluster) -> float:
    """User + system CPU of the cluster's postmaster and its children (backends, walsender...)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def load(base: str, token: str, paths: list[str], count: int) -> float:
    """Send ``count`` GETs over THREADS threads; requests per second."""

    def run() -> None:
        for index in range(count // THREADS):
            req = urllib.request.Request(base + paths[index % len(paths)], headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(req, timeout=30) as response:
                response.read()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.monotonic() - started)


def main() -> None:
    logs = Path(tempfile.mkdtemp(prefix="wallet-replica-bench-"))
    primary = PostgresCluster().init()
    primary.query("postgres", "CREATE DATABASE wallet")
    replica = ReplicaCluster(primary).init()
    results = {}
    try:
        for mode in ("primary only", "with a replica"):
            env = {"DATABASE_URL": primary.url("wallet")}
            if mode == "with a replica":
                env["WALLET_SERVICE_READ_REPLICA_URLS"] = replica.url("wallet")
            server = Server(env, logs / f"{len(results)}.log", workers=2)
            server.migrate()
            server.start()
            try:
                token = signup(server.base, "client", f"bench{len(results)}@example.com")
                wallet = request(server.base, "POST", "/wallet/create", {}, token)[1]["wallet"]
                for _ in range(60):
                    request(server.base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "1.00"}, token)
                replica.catch_up()
                time.sleep(1)
                paths = [f"/wallet/info/{wallet}", f"/wallet/history/{wallet}?limit=50", "/wallet/list", "/events"]
                load(server.base, token, paths, 200)  # warm-up: connections, caches
                before = cluster_cpu_seconds(primary), cluster_cpu_seconds(replica)
                rate = load(server.base, token, paths, REQUESTS)
                after = cluster_cpu_seconds(primary), cluster_cpu_seconds(replica)
                results[mode] = {
                    "requests per second": round(rate),
                    "primary CPU ms per request": round((after[0] - before[0]) * 1000 / REQUESTS, 3),
                    "replica CPU ms per request": round((after[1] - before[1]) * 1000 / REQUESTS, 3),
                }
                print(mode, results[mode], flush=True)
            finally:
                server.stop()
    finally:
        replica.destroy()
        primary.destroy()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
