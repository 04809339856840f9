"""Ticket creations arriving together share one ``BatchCreateTickets`` call to ticketing (ADR 0069).

``BatchedCreates`` stands in for the ``CreateTicket`` stub method: called the same way, it answers or fails
the same way. A create that finds fewer than ``concurrency`` calls in flight is sent at once, alone, as a
plain ``CreateTicket`` in its caller's trace: at moderate load nothing changes. Under load, creates queue
behind the calls in flight and the next call takes every one queued (up to ``max_batch``): one gRPC hop for
many requests, where a hop costs more CPU than anything else the gateway does for a create.

Each item keeps what a unary call has: its own deadline (it stops waiting when its request's budget is
spent; the call's deadline is the latest of its items'), its own outcome (an item ticketing refuses fails
alone, with the rich status ``CreateTicket`` would have failed with), its caller's trace (sent with the item)
and cancellation (a caller that goes away before the call leaves is dropped from it). A call that fails as a
whole fails every item in it with that status; a ticketing that does not know the call yet (UNIMPLEMENTED,
mid-upgrade) gets its items as one ``CreateTicket`` each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import grpc
import grpc.aio
from google.rpc import status_pb2
from opentelemetry import context as otel_context
from opentelemetry import propagate
from support.ticketing.v1 import ticketing_service_pb2 as pb
from support.ticketing.v1 import ticketing_service_pb2_grpc as pb_grpc

from services.kit.coalesce import Coalescer


@dataclass(frozen=True, slots=True)
class _Create:
    request: pb.CreateTicketRequest
    deadline: float  # time.monotonic()
    caller: otel_context.Context


# An item's answer: the response, the status ticketing refused it with, or the error of its own unary call.
_Outcome: TypeAlias = pb.CreateTicketResponse | status_pb2.Status | grpc.aio.AioRpcError


class BatchedCreates:
    def __init__(self, stub: pb_grpc.TicketingServiceAsyncStub, *, concurrency: int = 4, max_batch: int = 100) -> None:
        self._stub = stub
        self._calls = Coalescer(
            self._send,
            name="gateway.create_tickets",
            # Two creates with one key in one call would race each other inside ticketing.
            key=lambda create: create.request.request_id,
            max_batch=max_batch,
            concurrency=concurrency,
            # A call that failed as a whole (ticketing down, its deadline) would fail again item by item.
            isolate=lambda _: False,
        )

    # The stub method's signature, ``timeout`` included: callers cannot tell the two apart.
    async def __call__(
        self,
        request: pb.CreateTicketRequest,
        *,
        timeout: float,  # noqa: ASYNC109
        wait_for_ready: bool = False,
    ) -> pb.CreateTicketResponse:
        """As ``CreateTicket``: the response, or ``AioRpcError`` with the status the create failed with."""
        create = _Create(request, time.monotonic() + timeout, otel_context.get_current())
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._calls.submit(create)
        except TimeoutError:
            raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        if isinstance(outcome, pb.CreateTicketResponse):
            return outcome
        if isinstance(outcome, grpc.aio.AioRpcError):
            raise outcome
        raise _item_error(outcome)

    async def _send(self, creates: Sequence[_Create]) -> list[_Outcome]:
        timeout_s = max(create.deadline for create in creates) - time.monotonic()
        if len(creates) == 1:
            return [await self._alone(creates[0], timeout_s)]
        batch = pb.BatchCreateTicketsRequest(
            items=[
                pb.BatchCreateTicketsRequest.Item(request=create.request, trace_context=_trace_context(create.caller))
                for create in creates
            ]
        )
        try:
            response = await self._stub.BatchCreateTickets(batch, timeout=timeout_s, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                raise
            # A ticketing replica older than BatchCreateTickets (mid-upgrade): one call per create, as before.
            return await asyncio.gather(*(self._alone_outcome(create, timeout_s) for create in creates))
        if len(response.results) != len(creates):
            raise _rpc_error(grpc.StatusCode.INTERNAL, "ticketing answered a batch with the wrong number of results")
        return [
            result.response if result.WhichOneof("outcome") == "response" else result.error
            for result in response.results
        ]

    async def _alone(self, create: _Create, timeout_s: float) -> pb.CreateTicketResponse:
        """A plain CreateTicket, in its caller's trace."""
        token = otel_context.attach(create.caller)
        try:
            response: pb.CreateTicketResponse = await self._stub.CreateTicket(
                create.request, timeout=timeout_s, wait_for_ready=False
            )
            return response
        finally:
            otel_context.detach(token)

    async def _alone_outcome(self, create: _Create, timeout_s: float) -> _Outcome:
        try:
            return await self._alone(create, timeout_s)
        except grpc.aio.AioRpcError as exc:
            return exc


def _item_error(status: status_pb2.Status) -> grpc.aio.AioRpcError:
    """The error a unary CreateTicket would have raised: its code, message and rich status trailer."""
    # An empty outcome (code 0) is no answer at all.
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN) if status.code else grpc.StatusCode.UNKNOWN
    trailer = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailer, details=status.message)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def _trace_context(caller: otel_context.Context) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=caller)
    return carrier


_CODES = {code.value[0]: code for code in grpc.StatusCode}
