"""Ticket creation through the whole system, as a client sees it.

Starts `supportdesk up` (embedded servers, temporary data), creates tickets over HTTP at a fixed concurrency,
then measures how long after each 201 routing had the ticket queued (using the queue entry's enqueue time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks.common import machine, percentile, supportdesk_up, temp_dir, write_result

BIN = Path(sys.executable).parent


def token(data_dir: Path, role: str, sub: str) -> str:
    return subprocess.run(
        [str(BIN / "supportdesk"), "token", "--role", role, "--sub", sub],
        env={**os.environ, "SUPPORTDESK_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


async def create_all(
    url: str, customer: str, tickets: int, concurrency: int
) -> tuple[list[float], list[tuple[str, float]], float]:
    latencies: list[float] = []
    answered: list[tuple[str, float]] = []
    next_index = iter(range(tickets))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker() -> None:
            for i in next_index:
                started = time.perf_counter()
                response = await http.post(
                    "/v1/tickets",
                    headers={"Authorization": f"Bearer {customer}", "Idempotency-Key": str(uuid.uuid4())},
                    json={
                        "channel": "app",
                        "category": "payment_failed",
                        "subject": f"Payment failed #{i}",
                        "language": "en",
                    },
                )
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                answered.append((response.json()["id"], time.time()))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, answered, time.perf_counter() - began


async def routing_lag(url: str, supervisor: str, answered: list[tuple[str, float]]) -> list[float]:
    """Seconds from the gateway's 201 until routing queued the ticket (negative: queued before the answer)."""
    lags: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for ticket_id, answered_at in answered:
            for _ in range(600):
                response = await http.get(
                    f"/v1/tickets/{ticket_id}/routing", headers={"Authorization": f"Bearer {supervisor}"}
                )
                if response.status_code == 200:
                    enqueued = datetime.fromisoformat(response.json()["enqueued_at"]).timestamp()
                    lags.append(enqueued - answered_at)
                    break
                await asyncio.sleep(0.05)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with temp_dir("supportdesk-bench-") as data_dir, supportdesk_up(data_dir) as (url, _):
        customer, supervisor = token(data_dir, "customer", "c-bench"), token(data_dir, "supervisor", "s-bench")
        asyncio.run(create_all(url, customer, min(200, args.tickets), args.concurrency))  # warm-up
        latencies, answered, elapsed = asyncio.run(create_all(url, customer, args.tickets, args.concurrency))
        lags = asyncio.run(routing_lag(url, supervisor, answered[:: max(1, len(answered) // 200)]))
    result = {
        "machine": machine(),
        "tickets": args.tickets,
        "concurrency": args.concurrency,
        "tickets_per_s": args.tickets / elapsed,
        "latency_ms": {p: 1000 * percentile(latencies, float(p[1:])) for p in ("p50", "p95", "p99")},
        "answer_to_queued_ms": {p: 1000 * percentile(lags, float(p[1:])) for p in ("p50", "p95", "p99")},
        "answer_to_queued_samples": len(lags),
    }
    print(f"{'tickets':<24}{args.tickets} at concurrency {args.concurrency} on {os.cpu_count()} CPUs")
    print(f"{'created per second':<24}{result['tickets_per_s']:.0f}")
    print(f"{'create latency ms':<24}" + "  ".join(f"{k} {v:.1f}" for k, v in result["latency_ms"].items()))
    print(f"{'201 -> queued ms':<24}" + "  ".join(f"{k} {v:.1f}" for k, v in result["answer_to_queued_ms"].items()))
    print(f"written {write_result('walking_skeleton', result)}")


if __name__ == "__main__":
    main()
