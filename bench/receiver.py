"""A webhook receiver for the benchmarks, as a process of its own: `python bench/receiver.py [--close]`.

It stands for the subscribers' servers, which in production run elsewhere: on the benchmark's machine its
CPU competes with the service's, so it does as little as a receiver can (asyncio, the request read by its
Content-Length, nothing parsed but the webhook-id and the body's "created"), and the benchmarks measure
its CPU apart (its own process). It answers every POST ``204`` at once, keeping the connection open
(HTTP/1.1), or closing it after each answer with ``--close``. It prints its port on the first line.

``GET /state`` answers, for each distinct webhook-id in the order they first came: ``times``, when
(``time.monotonic()``, the same clock in every process of the machine), and ``delays``, how long after
the event's ``created``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import datetime

CLOSE = "--close" in sys.argv[1:]
first_seen: dict[bytes, tuple[float, float, bytes]] = {}  # webhook-id -> (monotonic, wall clock, created)


def state() -> bytes:
    arrivals = sorted(first_seen.values())
    return json.dumps(
        {
            "count": len(arrivals),
            "times": [monotonic for monotonic, _, _ in arrivals],
            "delays": [at - datetime.fromisoformat(created.decode()).timestamp() for _, at, created in arrivals],
        }
    ).encode()


def field(head: bytes, name: bytes) -> bytes:
    """A header field's value from a lower-cased head (b"" when it is not there)."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return b""
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class Receiving(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            total = end + 4 + int(field(head, b"content-length") or 0)
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            if head.startswith(b"get "):
                answer = state()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
                continue
            webhook_id = field(head, b"webhook-id")
            if webhook_id not in first_seen:
                start = body.find(b'"created":"') + 11
                first_seen[webhook_id] = (time.monotonic(), time.time(), body[start : body.find(b'"', start)])
            if CLOSE:
                self.transport.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                self.transport.close()
                return
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiving, "127.0.0.1", 0, backlog=128)
    print(server.sockets[0].getsockname()[1], flush=True)
    stopped = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stopped.set_result, None)
    await stopped


if __name__ == "__main__":
    asyncio.run(main())
