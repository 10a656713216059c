"""Server start-up shared by every service: a ``grpc.aio`` server with health, reflection, one interceptor that
turns domain errors into ``google.rpc.Status`` answers and records metrics, SO_REUSEPORT worker processes, and a
graceful SIGTERM drain (health NOT_SERVING, wait ``drain_seconds``, then ``server.stop(grace_seconds)``).
"""

from __future__ import annotations

import asyncio
import collections
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tix.db import create_engine
from tix.errors import ERROR_DOMAIN, DomainError, Unavailable
from tix.logs import configure_logging, get_logger
from tix.metrics import RPC_HANDLED, RPC_IN_FLIGHT, RPC_LATENCY, sample_event_loop_lag, start_metrics_server
from tix.redis_pool import create_redis
from tix.settings import ReadServiceSettings, ServiceSettings
from tix.validation import check_request_text, undecodable_request

log = get_logger("tix.server")

S = TypeVar("S", bound=ServiceSettings)


@dataclass
class Runtime(Generic[S]):
    """What a service's setup gets: its own settings (built once, by ``tix serve`` or a test), the stores, and a
    place to run and stop background work."""

    settings: S
    engine: AsyncEngine
    redis: Redis
    # Reads that may lag the primary a moment (ReadServiceSettings.database_read_url); the engine when unset.
    read_engine: AsyncEngine | None = None
    # Set when the server starts draining (health NOT_SERVING): side listeners (the event service's HTTP
    # listener) report unhealthy too, so the edge stops sending them new requests.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.read_engine is None:
            self.read_engine = self.engine

    @property
    def reader(self) -> AsyncEngine:
        """The engine for reads that may lag (the replica's, or the primary's)."""
        assert self.read_engine is not None
        return self.read_engine

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run background work (sweepers, fan-out loops) until shutdown; a crash is logged, not silent."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_task_end)
        self._tasks.append(task)
        return task

    def on_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        self._closers.append(closer)

    async def close(self) -> None:
        await _cancel_all(self._tasks)
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # shutdown must go on
                log.exception("close_failed", closer=repr(closer))
        await self.redis.aclose()
        if self.read_engine is not None and self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel background tasks and wait for them, cancelling again while any lives on: a cancellation can be lost
    inside a library (a Redis read whose own timeout fires in the same instant turns it into a TimeoutError that a
    retry loop then absorbs), and one lost cancellation must not hold a draining process for its whole bound."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.5)


def _log_task_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background_task_crashed", task=task.get_name(), error=repr(task.exception()))


@dataclass(frozen=True)
class ServiceDefinition(Generic[S]):
    """One service: its short name, the full gRPC service names it serves, its settings class, and how to add its
    servicers to a server."""

    name: str
    service_names: tuple[str, ...]
    settings_type: type[S]
    setup: Callable[[grpc.aio.Server, Runtime[S]], Awaitable[None]]

    def check_settings(self, settings: ServiceSettings) -> S:
        """The one narrowing: a service runs only with its own settings class."""
        if not isinstance(settings, self.settings_type):
            raise TypeError(
                f"the {self.name} service needs {self.settings_type.__name__}, not {type(settings).__name__}"
            )
        return settings


def status_for(error: DomainError) -> grpc.Status:
    """A domain error as a gRPC status whose details carry ErrorInfo (and BadRequest for field problems)."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details = [_packed(info)]
    if error.field_violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=name, description=problem)
                for name, problem in error.field_violations.items()
            ]
        )
        details.append(_packed(bad))
    if error.retry_delay_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_delay_seconds * 1000))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(
        code=code_pb2.Code.Value(error.code.value), message=error.message, details=details
    )
    converted = rpc_status.to_status(status)
    if error.retry_delay_seconds is None:
        return converted
    # Also as plain metadata, which the edge's transcoder passes on as the HTTP Retry-After header.
    return _Status(
        converted.code, converted.details,
        (*converted.trailing_metadata, ("retry-after", str(max(1, math.ceil(error.retry_delay_seconds))))),
    )


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


_INTERNAL = status_pb2.Status(
    code=code_pb2.INTERNAL,
    message="internal error",
    details=[_packed(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """The one place where requests are checked (``tix.validation``: decodable, clean text) before any handler, where
    domain errors become statuses, and where every RPC is timed, counted and logged."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or not (handler.unary_unary or handler.unary_stream):
            return handler
        _, _, full = handler_call_details.method.partition("/")
        service, _, method = full.partition("/")
        service = service.rsplit(".", 1)[-1]
        if service in ("Health", "ServerReflection"):
            return handler

        deserialize = _tolerant_deserializer(handler.request_deserializer)

        # grpc.aio handlers are coroutine functions (async generators for streams); the stubs type them as sync.
        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                RPC_IN_FLIGHT.labels(service, method).inc()
                code = "OK"
                try:
                    _check_request(request)
                    return await inner(request, context)
                except Exception as exc:  # noqa: BLE001 - mapped to a status here, once
                    code = _code_of(exc, context)
                    await _abort_for(exc, context, service, method)
                finally:
                    RPC_IN_FLIGHT.labels(service, method).dec()
                    _record(service, method, code, started)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )

        inner_stream: Any = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            RPC_IN_FLIGHT.labels(service, method).inc()
            code = "OK"
            try:
                _check_request(request)
                async for message in inner_stream(request, context):
                    yield message
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status here, once
                code = _code_of(exc, context)
                await _abort_for(exc, context, service, method)
            finally:
                RPC_IN_FLIGHT.labels(service, method).dec()
                _record(service, method, code, started, streaming=True)

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True)
class _Undecodable:
    """A request the generated parser refused (bytes that are not UTF-8 in a string field, a truncated message):
    handed to the handler wrapper so that it answers INVALID_ARGUMENT instead of gRPC's own INTERNAL, whose
    message would name the parser's exception."""

    raw: bytes
    descriptor: Descriptor


def _tolerant_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    message_type = getattr(deserialize, "__self__", None)  # the generated Message.FromString of the request type
    if deserialize is None or not isinstance(getattr(message_type, "DESCRIPTOR", None), Descriptor):
        return deserialize
    descriptor = message_type.DESCRIPTOR  # type: ignore[union-attr]
    parse = deserialize

    def tolerant(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError:
            return _Undecodable(raw, descriptor)

    return tolerant


def _check_request(request: Any) -> None:
    """The one input check before any handler runs (tix.validation): decodable, and text without control
    characters or code points no request has a use for."""
    if isinstance(request, _Undecodable):
        raise undecodable_request(request.raw, request.descriptor)
    if isinstance(request, Message):
        check_request_text(request)


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> str:
    if isinstance(exc, grpc.aio.AbortError):
        code: grpc.StatusCode | None = context.code()  # None when the servicer aborted without a code
        return code.name if code is not None else "UNKNOWN"
    if isinstance(exc, DomainError):
        return exc.code.value
    if isinstance(exc, NotImplementedError):
        return "UNIMPLEMENTED"
    if store_unavailable(exc):
        return "UNAVAILABLE"
    return "INTERNAL"


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, service: str, method: str) -> None:
    """Abort the call for ``exc`` (always raises); an abort the servicer already made passes through."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, DomainError):
        await context.abort_with_status(status_for(exc))
    if isinstance(exc, NotImplementedError):
        # The generated base servicers answer this way for RPCs a service does not implement (yet).
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented")
    if store_unavailable(exc):
        # PostgreSQL or Redis is away (a restart, a failover): a fast UNAVAILABLE the client may retry, not a 500.
        log.warning("rpc_store_unavailable", service=service, method=method, error=repr(exc))
        await context.abort_with_status(status_for(_store_unavailable_error()))
    log.error("rpc_crashed", service=service, method=method, error=repr(exc), exc_info=exc)
    await context.abort_with_status(rpc_status.to_status(_INTERNAL))


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says a store could not be reached (connection refused, lost or timed out), as opposed to a
    bug: the database's OperationalError/InterfaceError or a lost connection, Redis connection errors."""
    if isinstance(exc, (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _store_unavailable_error() -> DomainError:
    return Unavailable("STORE_UNAVAILABLE", "a data store is briefly unavailable, try again shortly").retry_after(1.0)


def _record(service: str, method: str, code: str, started: float, *, streaming: bool = False) -> None:
    elapsed = time.perf_counter() - started
    RPC_LATENCY.labels(service, method).observe(elapsed)
    RPC_HANDLED.labels(service, method, code).inc()
    # Every call at DEBUG (TIX_LOG_LEVEL=DEBUG); at the default INFO this is a no-op on the hot path.
    log.debug("rpc", service=service, method=method, code=code, ms=round(elapsed * 1000, 2), streaming=streaming)
    if elapsed > 1.0 and code == "OK" and not streaming:
        log.info("rpc_slow", service=service, method=method, seconds=round(elapsed, 3))


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    runtime: Runtime
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Drain: report NOT_SERVING, let load balancers notice, then give in-flight calls ``grace`` seconds.
        Every step is bounded, so a stuck call or store can delay shutdown but never block it."""
        settings = self.runtime.settings
        grace = settings.grace_seconds if grace is None else grace
        self.runtime.draining.set()
        await _bounded("health", self.health.enter_graceful_shutdown(), 5)
        drain = settings.drain_seconds if drain is None else drain
        if drain > 0:
            await asyncio.sleep(drain)
        await _bounded("server", self.server.stop(grace), grace + 5)
        await _bounded("runtime", self.runtime.close(), 15)


async def _bounded(step: str, work: Awaitable[Any], seconds: float) -> None:
    try:
        await asyncio.wait_for(work, seconds)
    except TimeoutError:
        log.error("shutdown_step_overran", step=step, seconds=seconds)


def _server_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    return [
        ("grpc.so_reuseport", 1),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        # grpc.aio takes incoming calls from the core one at a time on its event loop; in a burst (thousands of
        # fans opening WatchQueue at once) the core holds the rest as "pending" and, past this limit (default
        # 1,000), cancels them. Let the burst queue instead: each pending call costs a few KB.
        ("grpc.server.max_pending_requests", settings.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_calls * 2),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        # gRPC refuses metadata past 8 KiB at random (a soft limit) with RESOURCE_EXHAUSTED, which the edge would
        # turn into a 429. The edge forwards every request header as metadata and accepts up to 32 KiB of them
        # (431 beyond, tix_dev.edge), so the services accept comfortably more than that.
        ("grpc.max_metadata_size", 64 * 1024),
        ("grpc.absolute_max_metadata_size", 96 * 1024),
        ("grpc.max_send_message_length", 32 * 1024 * 1024),
    ]


async def start_server(
    definition: ServiceDefinition[S],
    settings: S,
    *,
    engine: AsyncEngine | None = None,
    redis: Redis | None = None,
) -> RunningServer:
    """Build and start one server in this event loop (tests use this directly)."""
    settings = definition.check_settings(settings)
    engine = engine or create_engine(settings)
    read_url = settings.database_read_url if isinstance(settings, ReadServiceSettings) else None
    runtime = Runtime(
        settings=settings,
        engine=engine,
        redis=redis or create_redis(settings.redis_url),
        read_engine=create_engine(settings, url=read_url) if read_url else engine,
    )
    server = grpc.aio.server(interceptors=[ServiceInterceptor()], options=_server_options(settings))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await definition.setup(server, runtime)
    runtime.spawn(sample_event_loop_lag(definition.name), name="event-loop-lag")
    reflection.enable_server_reflection(
        (*definition.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    for name in ("", *definition.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", service=definition.name, host=settings.host, port=port, pid=os.getpid())
    return RunningServer(server, port, runtime, health_servicer, definition.service_names)


# Set by SIGTERM/SIGINT before the event loop's own handlers exist (while the server is still starting).
_stop_requested_early = threading.Event()


async def _run_until_signalled(
    definition: ServiceDefinition, settings: ServiceSettings, ready: Any | None = None
) -> None:
    running = await start_server(definition, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    if _stop_requested_early.is_set():
        stop.set()
    await stop.wait()
    log.info("draining", service=definition.name, pid=os.getpid())
    await running.stop()
    log.info("stopped", service=definition.name, pid=os.getpid())


def _worker_main(definition: ServiceDefinition, settings: ServiceSettings, ready: Any | None = None) -> None:
    """One server process. A stop asked for while it starts is honoured once it serves: it drains, not dies."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: _stop_requested_early.set())
    import uvloop

    configure_logging(settings.log_level, settings.log_format, service=definition.name)
    uvloop.run(_run_until_signalled(definition, settings, ready))


def serve(definition: ServiceDefinition, settings: ServiceSettings | None = None) -> None:
    """Run a service until SIGTERM/SIGINT: in this process, or in ``workers`` processes sharing the port."""
    settings = settings or definition.settings_type()
    configure_logging(settings.log_level, settings.log_format, service=definition.name)
    if settings.workers == 1:
        start_metrics_server(settings.metrics_port, settings.host)
        _worker_main(definition, settings)
        return

    # Several processes: prometheus_client aggregates their samples through files; this parent serves /metrics.
    metrics_dir = tempfile.mkdtemp(prefix=f"tix-{definition.name}-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    if settings.port == 0:
        raise ValueError("workers > 1 needs a fixed port to share")
    context = multiprocessing.get_context("spawn")
    readies = [context.Event() for _ in range(settings.workers)]
    workers = [
        context.Process(target=_worker_main, args=(definition, settings, ready), name=f"{definition.name}-{i}")
        for i, ready in enumerate(readies)
    ]
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stopping.set())
    for worker in workers:
        worker.start()
    start_metrics_server(settings.metrics_port, settings.host)

    while not stopping.is_set() and all(worker.is_alive() for worker in workers):
        stopping.wait(0.5)
    # A worker still starting (a spawned interpreter importing its modules) would die of the signal without
    # draining: forward it once each worker serves.
    for worker, ready in zip(workers, readies, strict=True):
        if worker.is_alive() and ready.wait(timeout=60) and worker.is_alive() and worker.pid:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join()
    failed = [worker.name for worker in workers if worker.exitcode != 0]
    if failed:
        log.error("workers_failed", service=definition.name, workers=failed)
        raise SystemExit(1)
