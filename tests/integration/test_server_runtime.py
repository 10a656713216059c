"""The shared server runtime: health, reflection, error mapping to google.rpc.Status, graceful stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import text

from queue_svc.settings import QueueSettings
from tix.db import create_engine
from tix.errors import FailedPrecondition, InvalidArgument
from tix.server import Runtime, ServiceDefinition, start_server, status_for
from tixpb.v1 import event_pb2, event_pb2_grpc, queue_pb2, queue_pb2_grpc


class _FailingEvents(event_pb2_grpc.EventServiceServicer):
    async def GetEvent(self, request, context):
        if request.event_id == "bad":
            raise InvalidArgument("event_id", "is not a valid id")
        raise FailedPrecondition("SEAT_UNAVAILABLE", "seats are taken", seats="S1-A-1")

    async def WatchSeats(self, request, context):
        yield event_pb2.WatchSeatsResponse(version=1)
        raise FailedPrecondition("STREAM_BROKEN", "gone")


async def _setup(server: grpc.aio.Server, runtime: Runtime) -> None:
    event_pb2_grpc.add_EventServiceServicer_to_server(_FailingEvents(), server)


FAILING = ServiceDefinition("failing", ("tix.v1.EventService",), QueueSettings, _setup)


@pytest.fixture
async def failing_server(settings_env):
    running = await start_server(FAILING, QueueSettings(port=0))
    yield running
    await running.stop(grace=0)


async def test_domain_errors_become_status_with_error_info(failing_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{failing_server.port}") as channel:
        stub = event_pb2_grpc.EventServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetEvent(event_pb2.GetEventRequest(event_id="1"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        status = rpc_status.from_call(caught.value)
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert (info.reason, info.domain, dict(info.metadata)) == ("SEAT_UNAVAILABLE", "tix.dev", {"seats": "S1-A-1"})

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetEvent(event_pb2.GetEventRequest(event_id="bad"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(caught.value)
        bad = error_details_pb2.BadRequest()
        assert status.details[1].Unpack(bad)
        assert bad.field_violations[0].field == "event_id"


def _bad_request(error: grpc.aio.AioRpcError) -> tuple[str, ...]:
    status = rpc_status.from_call(error)
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details), status
    return tuple(violation.field for violation in bad.field_violations)


@pytest.mark.parametrize("stream", [False, True])
async def test_requests_that_are_not_utf8_or_carry_controls_never_reach_a_handler(failing_server, stream):
    """The interceptor checks every request once, unary and streaming alike: raw bytes that are not UTF-8 (what the
    edge makes of %FF) and NUL in a field are INVALID_ARGUMENT with a BadRequest naming the field, and the message
    says nothing of the parser."""
    method = "/tix.v1.EventService/" + ("WatchSeats" if stream else "GetEvent")
    raw = event_pb2.GetEventRequest(event_id="ab").SerializeToString().replace(b"ab", b"a\xff")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{failing_server.port}") as channel:
        call_raw = (channel.unary_stream if stream else channel.unary_unary)(
            method, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _drain(call_raw(raw))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Decode" not in caught.value.details()
        assert "event_id" in _bad_request(caught.value)

        stub = event_pb2_grpc.EventServiceStub(channel)
        call = (stub.WatchSeats if stream else stub.GetEvent)(event_pb2.GetEventRequest(event_id="1\x00"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _drain(call)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _bad_request(caught.value) == ("event_id",)


async def _drain(call):
    if hasattr(call, "__aiter__"):
        return [message async for message in call]
    return await call


async def test_stream_errors_after_messages_keep_the_messages(failing_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{failing_server.port}") as channel:
        stub = event_pb2_grpc.EventServiceStub(channel)
        call = stub.WatchSeats(event_pb2.WatchSeatsRequest(event_id="1"))
        first = await call.read()
        assert first.version == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _setup_unimplemented(server: grpc.aio.Server, runtime: Runtime) -> None:
    queue_pb2_grpc.add_QueueServiceServicer_to_server(queue_pb2_grpc.QueueServiceServicer(), server)


UNIMPLEMENTED = ServiceDefinition("bare", ("tix.v1.QueueService",), QueueSettings, _setup_unimplemented)


async def test_unimplemented_rpcs_answer_unimplemented_and_health_serves(settings_env):
    running = await start_server(UNIMPLEMENTED, QueueSettings(port=0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service="tix.v1.QueueService"))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await queue_pb2_grpc.QueueServiceStub(channel).JoinQueue(queue_pb2.JoinQueueRequest(event_id="1"))
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await running.health.enter_graceful_shutdown()
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await running.stop(grace=0)


def test_status_for_maps_codes():
    status = status_for(FailedPrecondition("HOLD_EXPIRED", "too late"))
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_held_event_loop_shows_in_the_loop_lag_metric(failing_server):
    """Every server samples its event loop: work that holds the loop (here 450 ms of blocking) is recorded as lag,
    the metric an operator's alert watches (TixEventLoopStalled)."""
    import asyncio
    import time

    from prometheus_client import REGISTRY

    def held() -> float:
        return REGISTRY.get_sample_value(
            "tix_event_loop_lag_seconds_count", {"service": "failing"}
        ) - REGISTRY.get_sample_value("tix_event_loop_lag_seconds_bucket", {"service": "failing", "le": "0.25"})

    await asyncio.sleep(0.25)  # the sampler has run
    before = held()
    time.sleep(0.45)  # holding the loop is the point: the sampler wakes at least 350 ms late
    await asyncio.sleep(0.25)
    assert held() >= before + 1


async def test_a_service_pool_keeps_its_connections_under_load(settings_env):
    """More concurrent calls than the pool has connections: they wait for one, and no connection is opened and
    closed per use (an overflow connection costs a new PostgreSQL backend every time it is taken)."""
    settings = QueueSettings(port=0, db_pool_size=4)
    engine = create_engine(settings)
    try:

        async def backend_pid() -> int:
            async with engine.connect() as conn:
                return int(await conn.scalar(text("SELECT pg_backend_pid() FROM pg_sleep(0.02)")))

        seen: set[int] = set()
        for _ in range(5):
            seen.update(await asyncio.gather(*(backend_pid() for _ in range(16))))
        assert len(seen) <= settings.db_pool_size
    finally:
        await engine.dispose()
