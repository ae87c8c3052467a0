"""``python -m wallet_service.supervise -- APP SERVER COMMAND``: the API and the worker, started and stopped together.

``make run`` serves through this: the app server given on the command line, and ``manage.py worker``
(hold expiry, webhook delivery, purges) beside it. SIGINT, SIGTERM and SIGHUP are passed to both;
when either exits, the other is stopped, so a server that fails to start leaves no worker behind (and
the other way round). The exit status is the app server's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 30


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m wallet_service.supervise -- APP SERVER COMMAND", file=sys.stderr)
        return 2
    server_command = argv[argv.index("--") + 1 :]
    children = [
        subprocess.Popen(server_command),
        subprocess.Popen([sys.executable, "manage.py", "worker"]),
    ]
    server = children[0]

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:  # one has exited: stop the other, then wait for both
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    status = server.returncode
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
