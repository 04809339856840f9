"""The ceiling for ticket creation on this machine: the same parts with nothing of ours in between.

A FastAPI handler (same uvicorn settings as the gateway) calls a gRPC server (same grpc.aio, same protobuf
messages as ticketing) that runs one Postgres transaction inserting the request and then publishes it to
JetStream, awaiting the PubAck. No auth, no validation beyond pydantic's, no tracing, no outbox.

Two of its blocks alone, for the single-part ceilings: a grpc.aio unary echo server, and a FastAPI app whose
``POST /v1/tickets`` validates the body and answers at once.

    .venv/bin/python benchmarks/bare_path.py grpc --port P --database-url URL --nats-url URL
    .venv/bin/python benchmarks/bare_path.py http --port P --grpc-addr HOST:PORT
    .venv/bin/python benchmarks/bare_path.py echo --port P
    .venv/bin/python benchmarks/bare_path.py trivial --port P
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import nats
import uvicorn
import uvloop
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from support.ticketing.v1 import ticket_pb2, ticketing_service_pb2, ticketing_service_pb2_grpc

SUBJECT = "bench.ticket.created"
ECHO_METHOD = "/bench.Echo/Echo"
ECHO_STREAM_METHOD = "/bench.Echo/EchoStream"


class _Servicer(ticketing_service_pb2_grpc.TicketingServiceServicer):
    def __init__(self, pool: asyncpg.Pool, js: Any) -> None:
        self.pool, self.js = pool, js

    async def CreateTicket(
        self, request: ticketing_service_pb2.CreateTicketRequest, context: Any
    ) -> ticketing_service_pb2.CreateTicketResponse:
        ticket_id = uuid.uuid4()
        payload = request.SerializeToString()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO bare_tickets (id, payload) VALUES ($1, $2)", ticket_id, payload)
        await self.js.publish(SUBJECT, payload, headers={"Nats-Msg-Id": str(ticket_id)})
        ticket = ticket_pb2.Ticket(
            id=str(ticket_id), customer_id=request.customer_id, subject=request.subject, language=request.language
        )
        return ticketing_service_pb2.CreateTicketResponse(ticket=ticket, created=True)


async def serve_grpc(port: int, database_url: str, nats_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=16)
    assert pool is not None
    await pool.execute("CREATE TABLE IF NOT EXISTS bare_tickets (id uuid PRIMARY KEY, payload bytea NOT NULL)")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="BARE", subjects=["bench.>"])
    server = grpc.aio.server()
    ticketing_service_pb2_grpc.add_TicketingServiceServicer_to_server(_Servicer(pool, js), server)  # type: ignore[abstract]  # only CreateTicket is served
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def serve_echo(port: int) -> None:
    """A unary method answering its request bytes, and a bidirectional stream answering each message with it:
    grpc.aio's own cost per call and per message on an open stream, nothing else."""

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def echo_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


class _TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    category: str
    subject: str
    description: str = ""
    language: str = "en"


def http_app(grpc_addr: str) -> FastAPI:
    stubs: list[ticketing_service_pb2_grpc.TicketingServiceStub] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The channel belongs to the server's event loop, so it is opened once that loop runs.
        async with grpc.aio.insecure_channel(grpc_addr) as channel:
            stubs.append(ticketing_service_pb2_grpc.TicketingServiceStub(channel))
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/tickets", status_code=201)
    async def create(body: _TicketIn) -> dict[str, str]:
        request = ticketing_service_pb2.CreateTicketRequest(
            request_id=str(uuid.uuid4()), customer_id="c-1", subject=body.subject, language=body.language
        )
        response = await stubs[0].CreateTicket(request, timeout=5)  # type: ignore[misc]  # the generated stub is typed as the sync one
        return {"id": response.ticket.id, "subject": response.ticket.subject, "status": "new"}

    return app


def trivial_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/tickets", status_code=201)
    async def create(body: _TicketIn) -> dict[str, str]:
        return {"id": str(uuid.uuid4()), "subject": body.subject, "status": "new"}

    return app


def serve_http(app: FastAPI, port: int) -> None:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", log_config=None, lifespan="on")
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("grpc", "http", "echo", "trivial"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--nats-url")
    parser.add_argument("--grpc-addr")
    args = parser.parse_args()
    if args.mode == "grpc":
        uvloop.run(serve_grpc(args.port, args.database_url, args.nats_url))
    elif args.mode == "echo":
        uvloop.run(serve_echo(args.port))
    elif args.mode == "trivial":
        serve_http(trivial_app(), args.port)
    else:
        serve_http(http_app(args.grpc_addr), args.port)


if __name__ == "__main__":
    main()
