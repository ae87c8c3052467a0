"""The HTTP server: ``python -m wallet_service.serve`` runs granian on ``HOST:PORT``.

Granian (a Rust HTTP server) reads every connection's headers in Rust, within
``HEADER_READ_TIMEOUT_SECONDS``, and wallet_service/asgi.py reads the body on the event loop within
its own deadline, before Django runs: a slow or stalled client holds a socket, never a Python worker
(under gunicorn's sync workers, one slow client per worker stopped the service). Django's views run
one at a time per worker process, in the thread asgiref keeps for synchronous code, as before.

The service's configuration is validated here, before any worker starts, so a bad variable stops
the server at once with a message naming it. Workers: ``WALLET_SERVICE_WORKERS``. SIGTERM or
SIGINT: stop accepting, finish the requests in flight (at most ``GRACEFUL_TIMEOUT_SECONDS``), exit.
SIGHUP: replace the workers one by one. A worker that dies is replaced.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import time

from wallet_service.config import ConfigError, load_config
from wallet_service.logs import logging_config

# A client gets this long to send its request line and headers (and an idle kept-alive connection
# this long to start its next request), then its connection is closed.
HEADER_READ_TIMEOUT_SECONDS = 10
GRACEFUL_TIMEOUT_SECONDS = 30
APPLICATION = "wallet_service.asgi:application"
# The metrics directory this process made itself (and so removes at exit), if it made one.
_owned_metrics_dir: str | None = None
_main_pid: int | None = None


def prepare_metrics_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR for the workers, emptied of an earlier run's samples.

    Each worker counts in its own process; prometheus_client's multiprocess mode has every worker
    write its samples to files there, and /metrics adds up all the files, so a scrape answered by any
    worker shows the whole server's totals (a dead worker's counts included). Without a directory
    from the environment, a private temporary one is made and removed at exit.
    """
    global _owned_metrics_dir
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _owned_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wallet-service-metrics-")
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for path in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(path)
    return metrics_dir


def remove_owned_metrics_dir() -> None:
    if _owned_metrics_dir and os.getpid() == _main_pid:
        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)


def load_application(target: str):
    """Run in each new worker before it imports the service: SIGTERM and SIGINT stop it again.

    A worker inherits the main process's handlers, which only set a flag in the main process's copy
    of the server: a SIGTERM arriving while the worker boots would be lost, and the worker would then
    serve until killed. Once booted, the worker installs its own handlers (graceful stop).
    """
    import signal

    from granian._internal import load_target

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return load_target(target)


def build_server(config):
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.mp import MPServer

    class Server(MPServer):
        def _init_shared_socket(self):
            # One listening socket, made here and shared by every worker, as gunicorn's was. (On Linux
            # granian otherwise has each worker bind its own SO_REUSEPORT socket: with every worker
            # dead, new connections are refused instead of waiting in the backlog for a replacement.)
            import socket

            from granian.net import SocketSpec

            self._ssp = None
            self._shd = SocketSpec(self.bind_addr, self.bind_port, self.backlog).build()
            self._sfd = self._shd.get_fd()
            self._sso = socket.socket(fileno=self._sfd)
            self._sso.set_inheritable(True)

        def _respawn_workers(self, workers, *args, **kwargs):
            # A replaced worker's live gauges must stop being reported; its counters stay in the totals.
            from prometheus_client import multiprocess

            replaced = [self.wrks[idx].inner.pid for idx in workers]
            # Granian exits when a worker dies again within 5.5 s of its replacement (a crash loop);
            # gunicorn replaced SIGKILLed workers however often, and so does this server, at most one
            # replacement a second for each worker.
            last = self.__dict__.setdefault("_last_respawn", {})
            if any(time.monotonic() - last.get(idx, 0) < 1 for idx in workers):
                time.sleep(1)
            super()._respawn_workers(workers, *args, **kwargs)
            for idx in workers:
                last[idx] = time.monotonic()
                self.respawned_wrks.pop(idx, None)
            for pid in replaced:
                multiprocess.mark_process_dead(pid)

    return Server(
        APPLICATION,
        address=os.environ.get("HOST") or "127.0.0.1",
        port=int(os.environ.get("PORT") or 8000),
        # ASGI without lifespan events (Django has none).
        interface=Interfaces.ASGINL,
        workers=config.workers,
        loop=Loops.asyncio,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_SECONDS * 1000, keep_alive=True),
        # Granian's own messages are JSON lines like the service's (wallet_service/logs.py). No access
        # log: the service logs each request itself, with its request id, method, path, status and duration.
        log_level=LogLevels(config.log_level),
        log_dictconfig=logging_config(config.log_level),
        log_access=False,
        respawn_failed_workers=True,
        respawn_interval=1,
        workers_kill_timeout=GRACEFUL_TIMEOUT_SECONDS,
    )


def main() -> None:
    try:
        config = load_config()
        port = os.environ.get("PORT") or "8000"
        if not port.isdigit() or int(port) > 65535:
            raise ConfigError("PORT", f"{port!r} is not a port number")
    except ConfigError as error:
        sys.exit(f"Configuration error: {error}")
    # Before any worker imports prometheus_client.
    global _main_pid
    _main_pid = os.getpid()
    prepare_metrics_dir()
    server = build_server(config)
    server.on_shutdown(remove_owned_metrics_dir)
    try:
        server.serve(target_loader=load_application)
    finally:
        remove_owned_metrics_dir()


if __name__ == "__main__":
    main()
