"""gunicorn settings. The service's configuration is validated here, before any worker is forked,
so a bad variable stops the server at once with a message naming it."""

import glob
import os
import shutil
import sys
import tempfile

from wallet_service.config import ConfigError, load_config
from wallet_service.logs import logging_config

try:
    _config = load_config()
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")

wsgi_app = "wallet_service.wsgi:application"
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
# Sync workers, WALLET_SERVICE_WORKERS of them (default 2 x CPUs + 1), one thread each: chosen by
# measurement with `make bench` on 2 cores (docs/PERFORMANCE.md, "Workers and threads"). A request is
# CPU-bound in Python, so threads add no throughput under the GIL, and gthread workers' keep-alive
# connections, cheaper for the load generator, gave worse p99 tails; 9 sync workers spent more CPU per
# request than 3 or 5 (more processes competing for two cores). To compare on another machine:
# GUNICORN_CMD_ARGS="--worker-class gthread --threads 4" make bench.
workers = _config.workers
worker_class = "sync"
threads = 1
timeout = 30
graceful_timeout = 30
loglevel = _config.log_level
# gunicorn's own messages are JSON lines like the service's (wallet_service/logs.py). Its access log
# is off: the service logs each request itself, with the request id, method, path, status and duration.
accesslog = None
errorlog = "-"
logconfig_dict = logging_config(_config.log_level)
# gunicorn's control socket lives in the home directory by default: two servers on one machine would
# share it, and a container's unprivileged user may have no home to write to.
control_socket_disable = True

# --- Metrics across worker processes -------------------------------------------------------------
# Each worker counts in its own process; prometheus_client's multiprocess mode has every worker
# write its samples to files in PROMETHEUS_MULTIPROC_DIR, and /metrics adds up all the files, so a
# scrape answered by any worker shows the whole server's totals (a dead worker's counts included).
# The variable must be set before a worker imports prometheus_client, hence here. Without one from
# the environment, a private temporary directory is made and removed when gunicorn exits.
_OWNED_MARKER = "WALLET_SERVICE_OWNS_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wallet-service-metrics-")
    os.environ[_OWNED_MARKER] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    # Samples left by an earlier run would be added to this one's: start from an empty directory.
    # (Not on a reload (HUP): the new workers go on counting where the old ones stopped.)
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for path in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    # A dead worker's live gauges must stop being reported; its counters stay in the totals.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir and os.environ.get(_OWNED_MARKER) == metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
