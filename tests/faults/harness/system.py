"""The system under test as separate processes the harness controls one by one.

NATS, Postgres and every service replica are children of the test process, each in its own session, so a
fault reaches exactly one of them: ``kill -9``, SIGSTOP/SIGCONT, or Postgres' immediate shutdown (SIGQUIT).
No supervisor restarts anything behind the scenario's back: a service that exits on its own (for example
because Postgres went away under it) is restarted by :meth:`System.keep_alive`, as a container runtime would,
and the restart is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres
from services.runtime.migrate import migrate_all
from services.runtime.processes import free_port, has_exited, stop_process_group
from tests.faults.harness.lifeline import Lifeline

BIN = Path(sys.executable).parent
GRPC_SERVICES = ("ticketing", "routing", "notify")
SCHEMAS = ("ticketing", "routing", "notify")


@dataclass
class Replica:
    """One ``supportdesk serve <service>`` process; restarts keep its port, its log and its instance name."""

    name: str
    service: str
    env: dict[str, str]
    log_path: Path
    grpc_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    # Held down by a fault: keep_alive leaves it stopped until the scenario releases it.
    held: bool = False
    stopped: bool = False  # SIGSTOPped
    starts: int = 0
    crashes: int = 0
    kills: int = 0
    lifeline: Lifeline = field(default_factory=Lifeline)

    def start(self) -> None:
        assert self.process is None or has_exited(self.process), f"{self.name} is running"
        self._reap()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "supportdesk"), "serve", self.service],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.lifeline.watch(self.process.pid)
        self.starts += 1
        self.stopped = False

    @property
    def running(self) -> bool:
        return self.process is not None and not has_exited(self.process)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and not has_exited(self.process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """``kill -9`` of the whole process group, and keep it down until released."""
        self.held = True
        self.kills += 1
        self.signal(signal.SIGKILL)  # a SIGSTOPped process dies too
        if self.process is not None:
            self.process.wait()
            self.process = None
            self.lifeline.watch(0)

    def stop(self, timeout: float = 10) -> None:
        if self.process is not None:
            if self.stopped:
                self.signal(signal.SIGCONT)
            stop_process_group(self.process, signal.SIGTERM, timeout)
            self.process = None
        self.lifeline.watch(0)

    def _reap(self) -> None:
        if self.process is not None and has_exited(self.process):
            self.process.wait()
            self.process = None
            self.lifeline.watch(0)


@dataclass
class System:
    """NATS, Postgres and the services of one scenario, with their data under ``root``."""

    root: Path
    postgres: EmbeddedPostgres
    database_url: str
    nats: EmbeddedNats
    replicas: dict[str, Replica] = field(default_factory=dict)
    gateway_url: str = ""
    secret: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    nats_lifeline: Lifeline = field(default_factory=Lifeline)
    _keeper: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        root: Path,
        postgres: EmbeddedPostgres,
        database_url: str,
        *,
        routing_replicas: int = 1,
        settings: Mapping[str, str] | None = None,
    ) -> System:
        nats = EmbeddedNats(root / "nats")
        nats_lifeline = Lifeline()
        await asyncio.to_thread(nats.start)
        nats_lifeline.watch(_pid(nats.pid))
        await migrate_all(database_url)
        secret_file = root / "secrets" / "local-jwt.key"
        system = cls(
            root,
            postgres,
            database_url,
            nats,
            secret=load_or_create_local_secret(secret_file),
            nats_lifeline=nats_lifeline,
        )
        system.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SUPPORTDESK_", "OTEL_"))},
            "NATS_URL": nats.url,
            "DATABASE_URL": database_url,
            "SUPPORTDESK_DATA_DIR": str(root),
            "SUPPORTDESK_LOG_LEVEL": "INFO",
            "SUPPORTDESK_LOCAL_JWT_SECRET_FILE": str(secret_file),
            "SUPPORTDESK_AUTH_MODE": "local",
            # The load is the harness's own; the gateway's per-caller limits are tested elsewhere.
            "SUPPORTDESK_RATE_LIMIT_ENABLED": "false",
            "OTEL_TRACES_EXPORTER": "none",
            **(settings or {}),
        }
        names = ["ticketing", *(f"routing-{i}" for i in range(routing_replicas)), "notify"]
        for name in names:
            system._add(name, name.split("-")[0])
        http_port = free_port("127.0.0.1")
        system._add(
            "gateway",
            "gateway",
            {
                "SUPPORTDESK_HTTP_HOST": "127.0.0.1",
                "SUPPORTDESK_HTTP_PORT": str(http_port),
                "SUPPORTDESK_TICKETING_ADDR": f"127.0.0.1:{system.replicas['ticketing'].grpc_port}",
                # The gateway talks to the first routing replica; the others consume and fire timers.
                "SUPPORTDESK_ROUTING_ADDR": f"127.0.0.1:{system.replicas['routing-0'].grpc_port}",
                "SUPPORTDESK_NOTIFY_ADDR": f"127.0.0.1:{system.replicas['notify'].grpc_port}",
            },
        )
        system.gateway_url = f"http://127.0.0.1:{http_port}"
        for replica in system.replicas.values():
            replica.start()
        await system.wait_ready()
        system._keeper = asyncio.create_task(system.keep_alive(), name="keep-alive")
        return system

    def _add(self, name: str, service: str, extra: Mapping[str, str] | None = None) -> Replica:
        env = {**self.env, "SUPPORTDESK_INSTANCE": name, **(extra or {})}
        port = None
        if service in GRPC_SERVICES:
            port = free_port("127.0.0.1")
            env |= {
                "SUPPORTDESK_GRPC_HOST": "127.0.0.1",
                "SUPPORTDESK_GRPC_PORT": str(port),
                # Free ports, not the documented defaults: replicas and parallel runs never clash.
                "SUPPORTDESK_METRICS_PORT": str(free_port("127.0.0.1")),
            }
        replica = Replica(name, service, env, self.root / f"{name}.log", grpc_port=port)
        self.replicas[name] = replica
        return replica

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for replica in reversed(self.replicas.values()):
            await asyncio.to_thread(replica.stop)
            replica.lifeline.close()
        await asyncio.to_thread(self.nats.stop)
        self.nats_lifeline.close()

    # --- supervision -------------------------------------------------------------------------------------

    async def keep_alive(self) -> None:
        """Restart a replica that exited by itself (not one a fault holds down), as an orchestrator would."""
        while True:
            for replica in self.replicas.values():
                if not replica.held and not replica.running:
                    replica.crashes += replica.starts > 0
                    replica.start()
            await asyncio.sleep(0.25)

    def release(self, replica: Replica) -> None:
        """Start a killed replica again (same port, same instance name)."""
        replica.start()
        replica.held = False

    # --- faults ------------------------------------------------------------------------------------------

    def sigstop(self, replica: Replica) -> None:
        replica.signal(signal.SIGSTOP)
        replica.stopped = True

    def sigcont(self, replica: Replica) -> None:
        replica.signal(signal.SIGCONT)
        replica.stopped = False

    def kill_nats(self) -> None:
        pid = self.nats.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        self.nats.stop()  # reaps it; the store and the port stay for the restart
        self.nats_lifeline.watch(0)

    def pause_nats(self) -> None:
        """Unreachable without a crash: the server stops answering while its connections stay open."""
        pid = self.nats.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)

    def resume_nats(self) -> None:
        pid = self.nats.pid
        assert pid is not None
        os.kill(pid, signal.SIGCONT)

    async def restart_nats(self) -> None:
        await asyncio.to_thread(self.nats.start)
        self.nats_lifeline.watch(_pid(self.nats.pid))

    def stop_postgres_immediately(self) -> None:
        """SIGQUIT to the postmaster: immediate shutdown, no checkpoint, every backend cut off."""
        pid = self.postgres.pid
        assert pid is not None
        os.kill(pid, signal.SIGQUIT)

    async def restart_postgres(self) -> None:
        # stop() reaps the postmaster and any orphaned backend; start() recovers from the WAL.
        await asyncio.to_thread(self.postgres.stop)
        await asyncio.to_thread(self.postgres.start)

    # --- readiness and tokens ---------------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 90.0) -> None:  # noqa: ASYNC109
        """Every replica answers its health check and the gateway is ready."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=2) as http:
            while True:
                if all(await asyncio.gather(*(self._healthy(r, http) for r in self.replicas.values()))):
                    return
                if time.monotonic() > deadline:
                    down = [r for r in self.replicas.values() if not r.running]
                    tails = "".join(f"\n--- {r.name} ---\n{r.log_tail()}" for r in down)
                    raise AssertionError(
                        f"system not ready within {timeout:.0f} s (not running: {[r.name for r in down]}){tails}"
                    )
                await asyncio.sleep(0.1)

    async def _healthy(self, replica: Replica, http: httpx.AsyncClient) -> bool:
        if not replica.running:
            return False
        if replica.grpc_port is None:
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{replica.grpc_port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def token(self, role: str, subject: str) -> str:
        return mint_local_token(
            self.secret, role=role, subject=subject, ttl_s=3600, issuer="supportdesk-local", audience="supportdesk"
        )

    def auth(self, role: str, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}

    # --- reading state for the checks -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.database_url, timeout=5)
        try:
            yield conn
        finally:
            await conn.close()

    def logs(self) -> bytes:
        return b"".join(r.log_path.read_bytes() for r in self.replicas.values() if r.log_path.exists())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {"starts": r.starts, "kills": r.kills, "crash_restarts": r.crashes}
            for name, r in self.replicas.items()
        }


def _pid(pid: int | None) -> int:
    assert pid is not None, "the server is not running"
    return pid
