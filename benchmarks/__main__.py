"""Every benchmark in one run: the ceilings of the parts, our system end to end, scale curves, and ratios.

    .venv/bin/python -m benchmarks            # the full run, about 10 minutes
    .venv/bin/python -m benchmarks --quick    # shorter phases and smaller sizes, about 2 minutes

One embedded NATS and one embedded Postgres (in a temporary folder) serve every part, so the ceilings and our
system are measured on the same servers, one part at a time; only ``api`` (the create path alone beside a
composite, ``gateway_api.py``) starts servers of its own, last. Prints one table and writes
``benchmarks/results/all-<time>.json``. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import uvloop

from benchmarks import ceilings, gateway_api, relay, scale, system
from benchmarks.common import machine, temp_dir, write_result
from services.routing.consumers import TIMER_LOOPS
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres

# ``api`` runs last, on servers of its own: its ticketing would otherwise consume what earlier parts left on
# the shared streams, and its events would reach the routing of later ones.
SECTIONS = ("ceilings", "relay", "system", "dispatch", "timers", "api")
FULL = {
    "duration": 8.0,
    "relay_rows": 50_000,
    "grid_agents": (100, 1_000, 10_000),
    "grid_tickets": (1_000, 10_000, 100_000),
    "samples": 300,
    "events": 300,
    "timers_due": 100_000,
    "timer_spread": 90.0,
}
QUICK = {
    "duration": 3.0,
    "relay_rows": 10_000,
    "grid_agents": (100, 1_000),
    "grid_tickets": (1_000, 10_000),
    "samples": 100,
    "events": 100,
    "timers_due": 5_000,
    "timer_spread": 10.0,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short phases and small sizes (about 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these parts")
    parser.add_argument("--duration", type=float, help="seconds per measured phase")
    parser.add_argument("--connections", type=int, default=32, help="HTTP clients at saturation")
    parser.add_argument("--get-rate", type=float, default=300.0, help="api: GET /v1/tickets/{id} requests per second")
    parser.add_argument("--relay-rows", type=int, help="outbox rows the relay publishes")
    parser.add_argument("--samples", type=int, help="timed dispatch decisions of each kind per size")
    parser.add_argument(
        "--events", type=int, help="ticket.created events routing handles at each size, for its memory (0: none)"
    )
    parser.add_argument("--timers", type=int, default=100_000, help="armed timers")
    parser.add_argument("--timers-due", type=int, help="of the armed timers, how many come due during the run")
    parser.add_argument("--timer-spread", type=float, help="seconds over which the due timers come due")
    parser.add_argument("--timer-batch", type=int, default=20, help="timers the scheduler claims per transaction")
    parser.add_argument(
        "--timer-loops", type=int, default=TIMER_LOOPS, help=f"claiming loops (routing's: {TIMER_LOOPS})"
    )
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "quick": args.quick, "started": time.strftime("%FT%TZ")}
    with (
        temp_dir("supportdesk-bench-all-") as tmp,
        EmbeddedNats(tmp / "nats") as bus,
        EmbeddedPostgres(tmp / "postgres", run_as=os.environ.get("SUPPORTDESK_PG_USER")) as pg,
    ):
        env = {**os.environ, "NATS_URL": bus.url, "DATABASE_URL": pg.url, "SUPPORTDESK_LOG_LEVEL": "WARNING"}
        began = time.perf_counter()

        async def part(name: str, work: Any) -> None:
            if name in args.only:
                started = time.perf_counter()
                print(f"-- {name} ...", flush=True)
                result[name] = await work()
                result.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)

        await part("ceilings", lambda: ceilings.run(tmp, env, args.duration, args.connections))
        await part("relay", lambda: relay.throughput(pg.url, bus.url, args.relay_rows))
        await part("system", lambda: system.run(tmp / "up", env, args.duration, args.connections))
        await part(
            "dispatch",
            lambda: scale.dispatch_grid(
                pg.url, args.grid_agents, args.grid_tickets, args.samples, tmp=tmp, env=env, events=args.events
            ),
        )
        assert pg.pid is not None
        await part(
            "timers",
            lambda: scale.timers(
                pg.url,
                pg.pid,
                args.timers,
                min(args.timers, args.timers_due),
                args.timer_spread,
                args.timer_batch,
                args.timer_loops,
            ),
        )
        await part(
            "api",
            lambda: gateway_api.run(
                argparse.Namespace(
                    duration=args.duration, connections=args.connections, half_rate=0.0, get_rate=args.get_rate
                ),
                tmp / "api",
            ),
        )
        result.setdefault("seconds", {})["total"] = round(time.perf_counter() - began, 1)
    result["ratios"] = ratios(result)
    return result


def _get(result: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(float(a) / float(b), 2)


def ratios(r: dict[str, Any]) -> dict[str, float | None]:
    """Each of our paths against the ceiling of what it is built from, from this run's figures."""
    composite = _get(r, "ceilings", "composite", "saturated", "rate_per_s")
    return {
        "create: ours / composite ceiling (tickets/s)": _ratio(
            _get(r, "system", "saturation", "create", "rate_per_s"), composite
        ),
        "created and routed: ours / composite ceiling (tickets/s)": _ratio(
            _get(r, "system", "saturation", "created_and_routed_per_s"), composite
        ),
        "create p99 at half load: ours / composite ceiling (ms)": _ratio(
            _get(r, "system", "latency_by_load", "50%", "p99_ms"),
            _get(r, "ceilings", "composite", "half_rate", "p99_ms"),
        ),
        "create path, gateway + ticketing: ours / composite beside it (tickets/s)": _ratio(
            _get(r, "api", "post_saturated", "rate_per_s"), _get(r, "api", "ceiling_post_saturated", "rate_per_s")
        ),
        "create path p99 at half the composite's rate: ours / composite (ms)": _ratio(
            _get(r, "api", "post_half_rate", "p99_ms"), _get(r, "api", "ceiling_post_half_rate", "p99_ms")
        ),
        "outbox relay / JetStream pipelined publish (msgs/s)": _ratio(
            _get(r, "relay", "rows_per_s"), _get(r, "ceilings", "jetstream", "pipelined_500", "rate_per_s")
        ),
        "composite ceiling / FastAPI trivial POST (req/s)": _ratio(
            composite, _get(r, "ceilings", "fastapi_trivial", "rate_per_s")
        ),
        "composite ceiling / grpc.aio echo (calls/s)": _ratio(
            composite, _get(r, "ceilings", "grpc_echo", "saturated_16", "rate_per_s")
        ),
        "Postgres at 16: one CTE / 4-round-trip transaction (commits/s)": _ratio(
            _get(r, "ceilings", "postgres", "cte_c16", "rate_per_s"),
            _get(r, "ceilings", "postgres", "tx4_c16", "rate_per_s"),
        ),
        "Postgres CTE: 64 connections / 16 (commits/s)": _ratio(
            _get(r, "ceilings", "postgres", "cte_c64", "rate_per_s"),
            _get(r, "ceilings", "postgres", "cte_c16", "rate_per_s"),
        ),
    }


Row = tuple[str, str, str, str]


def _lat(f: dict[str, Any], suffix: str = "_ms") -> str:
    return " / ".join(f"{f[f'p{p}{suffix}']:.1f}" for p in (50, 95, 99)) + " ms p50/p95/p99"


def _busy(phase: dict[str, Any]) -> tuple[str, str]:
    """A system phase's CPU per ticket: the total, then by process with how busy the cores were."""
    cpu = phase["cpu_ms_per_ticket"]
    by_process = "  ".join(f"{name} {ms:.1f}" for name, ms in cpu.items() if name != "total")
    return f"{cpu['total']:.1f} ms", f"{by_process}; cores {100 * phase['cpu_utilisation']:.0f}% busy"


def _cpu(parts: dict[str, float]) -> str:
    """CPU milliseconds by part, total first."""
    named = ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items() if name != "total")
    return f"{parts['total']:.2f} ms CPU ({named})"


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    if c := r.get("ceilings"):
        for key, f in c["postgres"].items():
            kind = "one CTE statement" if key.startswith("cte") else "BEGIN+2 INSERT+COMMIT"
            conc = key.rsplit("_c", 1)[1]
            out.append(
                ("ceiling", f"asyncpg ticket+outbox, {kind}, {conc} conn", f"{f['rate_per_s']:,.0f}/s", _lat(f, ""))
            )
        js = c["jetstream"]
        out.append(
            (
                "ceiling",
                "JetStream publish+ack, one at a time",
                f"{js['sync']['rate_per_s']:,.0f}/s",
                _lat(js["sync"], ""),
            )
        )
        out.append(
            (
                "ceiling",
                "JetStream publish+ack, pipelined 500",
                f"{js['pipelined_500']['rate_per_s']:,.0f}/s",
                "per batch: " + _lat(js["pipelined_500"], ""),
            )
        )
        g = c["grpc_echo"]["saturated_16"]
        out.append(("ceiling", "grpc.aio unary echo, 16 callers", f"{g['rate_per_s']:,.0f}/s", _lat(g, "")))
        unary, stream = c["grpc_echo"]["at_300_per_s"], c["grpc_echo"]["stream_at_300_per_s"]
        for label, count, cpu in (
            ("unary echo at 300/s: CPU per call", f"{unary['rate_per_s']:,.0f}/s", unary["cpu_ms_per_call"]),
            ("stream echo at 300/s: CPU per message", f"{stream['messages']:,} msgs", stream["cpu_ms_per_message"]),
        ):
            out.append(("ceiling", f"grpc.aio {label}", count, _cpu(cpu)))
        f = c["fastapi_trivial"]
        out.append(("ceiling", "FastAPI+uvicorn trivial POST", f"{f['rate_per_s']:,.0f}/s", _lat(f)))
        for phase in ("saturated", "half_rate"):
            f = c["composite"][phase]
            label = "saturated" if phase == "saturated" else "at half of its maximum"
            out.append(
                ("ceiling", f"composite FastAPI→gRPC→PG→JetStream, {label}", f"{f['rate_per_s']:,.0f}/s", _lat(f))
            )
        if cpu := c["composite"].get("cpu_ms_per_request_at_half_rate"):
            out.append(("ceiling", "composite at half: CPU per request", "", _cpu(cpu)))
    if f := r.get("relay"):
        out.append(
            (
                "ours",
                f"outbox relay, {f['rows']:,} pre-filled rows",
                f"{f['rows_per_s']:,.0f}/s",
                f"{f['on_stream']:,} on stream",
            )
        )
    if s := r.get("system"):
        sat = s["saturation"]
        out.append(
            (
                "ours",
                "POST /v1/tickets, saturated",
                f"{sat['create']['rate_per_s']:,.0f}/s",
                _lat(sat["create"]) + f", non-2xx {sat['create']['non_2xx']}",
            )
        )
        out.append(
            (
                "ours",
                "created and routed (routing consumer done)",
                f"{sat['created_and_routed_per_s']:,.0f}/s",
                f"{sat['routed']:,} routed; backlog drained {sat['routing_backlog_drained_after_load_s']} s after load",
            )
        )
        for share, f in s["latency_by_load"].items():
            out.append(
                (
                    "ours",
                    f"POST /v1/tickets at {share} of max",
                    f"{f['rate_per_s']:,.0f}/s",
                    _lat(f) + f", non-2xx {f['non_2xx']}",
                )
            )
        if m := s.get("with_agents_saturated"):
            lat = m["create_to_offer_ms"]
            out.append(
                (
                    "ours",
                    f"agents accepting, saturated: created, offered and accepted, {m['agents']} agents",
                    f"{m['created_and_assigned_per_s']:,.0f}/s",
                    f"create → offer p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} ms; "
                    f"{m['assigned']}/{m['created']} assigned",
                )
            )
        a = s["with_agents"]
        lat = a["create_to_offer_ms"]
        out.append(
            (
                "ours",
                f"create → offer, {a['rate_per_s']:.0f}/s (half of that max), {a['agents']} agents",
                f"{lat['p99']:.1f} ms p99",
                f"p50 {lat['p50']:.1f} p95 {lat['p95']:.1f}; {a['offered']}/{a['created']} offered; "
                f"started after {a['settled_before_s']:.1f} s for the stack to settle",
            )
        )
        for stage, lat in a["create_to_offer_stages_ms"].items():
            out.append(
                (
                    "ours",
                    f"  of which {stage.replace('_', ' ')}",
                    f"{lat['p50']:.1f} ms p50",
                    f"p95 {lat['p95']:.1f} p99 {lat['p99']:.1f}",
                )
            )
        for phase, label in ((m, "saturated"), (a, "at half")):
            if phase and "cpu_ms_per_ticket" in phase:
                what = f"CPU per ticket created, offered and accepted, {label}, by process"
                out.append(("ours", what, *_busy(phase)))
        lat = a["create_to_assignment_ms"]
        out.append(
            (
                "ours",
                "create → assignment (offer accepted over the API)",
                f"{lat['p99']:.1f} ms p99",
                f"p50 {lat['p50']:.1f} p95 {lat['p95']:.1f}; {a['assigned']}/{a['created']} assigned",
            )
        )
        out.append(("ours", "CPU per ticket created and routed, saturated, by process", *_busy(s["saturation"])))
        lat = a["offer_event_to_stream_frame_ms"]
        out.append(
            (
                "ours",
                "WebSocket /v1/stream: offer event → the agent's frame",
                f"{lat['p99']:.1f} ms p99",
                f"p50 {lat['p50']:.1f} p95 {lat['p95']:.1f}; {a['pushed']}/{a['offered']} pushed",
            )
        )
        logged = s["service_log_warnings"]
        top = ", ".join(f"{n}× {m}" for m, n in list(logged.items())[:2])
        out.append(("ours", "warnings and errors the services logged", f"{sum(logged.values())}", top))
        for stage, rss in s["memory_rss_mb"].items():
            out.append(("memory", f"RSS at {stage}", "", "  ".join(f"{k} {v:.0f} MB" for k, v in rss.items())))
    for cell in r.get("dispatch", []):
        a, t = cell["best_agent_for_ticket_ms"], cell["best_ticket_for_agent_ms"]
        out.append(
            (
                "scale",
                f"dispatch, {cell['agents']:,} agents / {cell['waiting_tickets']:,} waiting",
                f"{a['mean']:.2f} / {t['mean']:.2f} ms",
                f"mean agent-for-ticket / ticket-for-agent; p99 {a['p99']:.2f} / {t['p99']:.2f} ms",
            )
        )
        if rss := cell.get("routing_rss"):
            out.append(
                (
                    "memory",
                    f"routing RSS, {cell['agents']:,} agents / {cell['waiting_tickets']:,} waiting",
                    f"{rss['after_events_mb']:.0f} MB",
                    f"idle {rss['idle_mb']:.0f} MB; after {rss['events']} new tickets in {rss['events_handled_s']} s; "
                    f"{rss['log_warnings']} warnings logged",
                )
            )
    if t := r.get("timers"):
        out.append(
            (
                "scale",
                f"SLA timers, {t['name']}",
                f"{t['lateness_p99_ms']:.1f} ms p99",
                f"lateness p50 {t['lateness_p50_ms']:.1f}, max {t['lateness_max_ms']:.1f}; scheduler RSS "
                f"{t['scheduler_rss_peak_mb']:.0f} MB, {t['scheduler_cpu_ms_per_fire']:.3f} ms CPU/fire",
            )
        )
    if a := r.get("api"):
        out.extend(_api_rows(a))
    for name, value in r.get("ratios", {}).items():
        out.append(("ratio", name, "n/a" if value is None else f"{value:.2f}×", ""))
    return out


def _api_rows(a: dict[str, Any]) -> list[Row]:
    """The create path alone (gateway + ticketing, ``gateway_api.py``) beside a composite on its own servers."""
    out: list[Row] = []
    for section, who, key in (
        ("ceiling", "composite beside the create path", "ceiling_post"),
        ("ours", "POST, gateway + ticketing only", "post"),
    ):
        for phase, label in (("saturated", "saturated"), ("half_rate", "at half the composite's maximum")):
            f = a[f"{key}_{phase}"]
            out.append((section, f"{who}, {label}", f"{f['rate_per_s']:,.0f}/s", _lat(f)))
    out.append(
        (
            "ceiling",
            "composite beside the create path, at half: CPU per request",
            "",
            _cpu(a["ceiling_cpu_ms_per_request_at_half_rate"]),
        )
    )
    out.append(
        (
            "ours",
            "POST, gateway + ticketing only, at half: CPU per request",
            "",
            _cpu(a["cpu_ms_per_request_at_half_rate"]),
        )
    )
    g = a["get_ticket"]
    out.append(("ours", "GET /v1/tickets/{id}, gateway + ticketing only", f"{g['rate_per_s']:,.0f}/s", _lat(g)))
    return out


def print_table(table: list[Row]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for section, figure, value, detail in table:
        print(f"{section:<{widths[0]}}  {figure:<{widths[1]}}  {value:>{widths[2]}}  {detail}")


def main() -> None:
    args = parse_args()
    result = uvloop.run(run(args))
    result["args"] = dict(vars(args))
    print()
    print_table(rows(result))
    print(f"\n{result['machine']}; {result['seconds']}")
    print(f"written {write_result('all', result)}")


if __name__ == "__main__":
    main()
