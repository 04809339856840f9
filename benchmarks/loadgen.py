"""A lean HTTP/1.1 load generator: keep-alive connections over asyncio streams.

Load and servers share this machine's cores, so the generator must cost as little as possible per request;
general-purpose clients (httpx) spend more CPU per request than the servers under test. It speaks only what
the benchmarks need: fixed requests, ``Content-Length`` responses.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def record(self, status: int, latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        """Rate, latency percentiles and the count of answers other than 2xx (0: the server dropped us)."""
        return {
            "rate_per_s": round(self.rate, 1),
            **{f"p{p}_ms": round(self.percentile(p), 2) for p in (50, 95, 99)},
            "non_2xx": sum(n for status, n in self.statuses.items() if not 200 <= status < 300),
        }


def quiet_collector() -> None:
    """Exempt what the generator holds so far from garbage collection before a measured phase.

    A full collection walks every live object; in a process that has imported the services' modules that
    stalled the generator itself for up to 340 ms, and every request in flight was charged the stall.
    """
    gc.collect()
    gc.freeze()


RequestFactory = Callable[[], bytes]
# Called with each request's scheduled start (perf_counter), its status and its body.
ResponseHook = Callable[[float, int, bytes], None]


def request_bytes(method: str, host: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# A keep-alive connection idle this long is reopened before its next request, as HTTP clients do (httpx's
# keepalive_expiry): uvicorn closes idle ones after 5 s, and a request sent as it closes would be lost.
IDLE_EXPIRY_S = 4.0


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: tuple[str, int]) -> None:
        self.reader, self.writer, self.address = reader, writer, address
        self.last_used = time.perf_counter()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, (host, port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Status and body; status 0 when the server dropped the connection (it is then reopened)."""
        if time.perf_counter() - self.last_used > IDLE_EXPIRY_S:
            await self._reopen()
        try:
            return await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self._reopen()
            return 0, b""
        finally:
            self.last_used = time.perf_counter()

    async def _reopen(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(*self.address)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


async def saturate(
    host: str,
    port: int,
    make: RequestFactory,
    *,
    connections: int,
    duration_s: float,
    on_response: ResponseHook | None = None,
) -> Results:
    """Closed loop: ``connections`` clients each send the next request as soon as the last is answered."""
    results = Results()
    pool = [await Connection.open(host, port) for _ in range(connections)]
    quiet_collector()
    stop_at = time.perf_counter() + duration_s

    async def client(conn: Connection) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status, body = await conn.exchange(make())
            results.record(status, (time.perf_counter() - started) * 1000)
            if on_response is not None:
                on_response(started, status, body)

    started = time.perf_counter()
    await asyncio.gather(*(client(conn) for conn in pool))
    results.elapsed_s = time.perf_counter() - started
    for conn in pool:
        conn.close()
    return results


async def at_rate(
    host: str,
    port: int,
    make: RequestFactory,
    *,
    rate: float,
    duration_s: float,
    connections: int = 64,
    on_response: ResponseHook | None = None,
) -> Results:
    """Open loop: requests start on a fixed schedule whatever the latency, so queueing shows in the figures.

    Latency is measured from each request's scheduled start, not from when a free connection took it.
    """
    results = Results()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(host, port))
    total = int(rate * duration_s)
    quiet_collector()
    begin = time.perf_counter()
    in_flight: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        conn = await idle.get()
        try:
            status, body = await conn.exchange(make())
        finally:
            idle.put_nowait(conn)
        results.record(status, (time.perf_counter() - scheduled) * 1000)
        if on_response is not None:
            on_response(scheduled, status, body)

    for index in range(total):
        scheduled = begin + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    results.elapsed_s = time.perf_counter() - begin
    while not idle.empty():
        idle.get_nowait().close()
    return results
