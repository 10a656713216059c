"""QueueService: proto in, waiting-room call, proto out.

WatchQueue streams bytes serialized by the watcher loop (each distinct message once, see ``queue_svc.watchers``);
``server.py`` registers the method with a pass-through serializer. ``TicketRenderer`` is that serialization: a
ticket's fixed fields once per stream, the changing fields once per distinct view; protobuf concatenation merges
the two into one ``QueueTicket``.
"""

from __future__ import annotations

from google.protobuf import duration_pb2

from queue_svc.domain import QueueTicketView, StoredTicket, TicketState, WaitingRoom
from queue_svc.stream_tokens import StreamTokenSigner
from queue_svc.watchers import QueueWatchers
from tix.catalog import timestamp
from tix.identity import require_user_id
from tix.validation import optional_request_id, require_numeric_id, require_uuid
from tixpb.v1 import queue_pb2, queue_pb2_grpc

_STATES = {
    TicketState.PRE_QUEUE: queue_pb2.QUEUE_TICKET_STATE_PRE_QUEUE,
    TicketState.WAITING: queue_pb2.QUEUE_TICKET_STATE_WAITING,
    TicketState.ADMITTED: queue_pb2.QUEUE_TICKET_STATE_ADMITTED,
    TicketState.EXPIRED: queue_pb2.QUEUE_TICKET_STATE_EXPIRED,
}


def _changing_fields(view: QueueTicketView) -> queue_pb2.QueueTicket:
    ticket = queue_pb2.QueueTicket(
        state=_STATES[view.state],
        position=view.position,
        admission_token=view.admission_token or "",
        fans_waiting=view.fans_waiting,
    )
    if view.estimated_wait_seconds is not None:
        ticket.estimated_wait.CopyFrom(duration_pb2.Duration(seconds=int(view.estimated_wait_seconds)))
    if view.admission_expires_at is not None:
        ticket.admission_expire_time.CopyFrom(timestamp(view.admission_expires_at))
    if view.sale_starts_at is not None:
        ticket.sale_start_time.CopyFrom(timestamp(view.sale_starts_at))
    return ticket


def render_ticket(view: QueueTicketView) -> queue_pb2.QueueTicket:
    ticket = _changing_fields(view)
    ticket.ticket_id = view.ticket_id
    ticket.event_id = str(view.event_id)
    ticket.join_time.CopyFrom(timestamp(view.joined_at))
    return ticket


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


_WAITING_STATE = bytes([0x18]) + _varint(queue_pb2.QUEUE_TICKET_STATE_WAITING)  # field 3, varint


class TicketRenderer:
    """The watcher loop's serializer (``queue_svc.watchers.Renderer``). A waiting fan's message (state, position,
    estimated wait) is written directly in the protobuf wire format: it is the one sent to every watcher on every
    step, and encoding it by hand costs a fraction of building a message (tests compare it with the library's)."""

    def prefix(self, ticket: StoredTicket) -> bytes:
        return queue_pb2.QueueTicket(
            ticket_id=ticket.ticket_id, event_id=str(ticket.event_id), join_time=timestamp(ticket.joined_at)
        ).SerializeToString()

    def body(self, view: QueueTicketView) -> bytes:
        if view.state is TicketState.WAITING and not view.admission_token and not view.fans_waiting:
            return self.waiting_body(view.position, view.estimated_wait_seconds)
        return _changing_fields(view).SerializeToString()

    @staticmethod
    def waiting_body(position: int, wait_seconds: float | None) -> bytes:
        body = _WAITING_STATE
        if position:
            body += b"\x20" + _varint(position)  # field 4, varint
        if wait_seconds is not None:
            seconds = int(wait_seconds)
            duration = b"\x08" + _varint(seconds) if seconds else b""  # Duration.seconds, field 1
            body += b"\x2a" + _varint(len(duration)) + duration  # field 5, length-delimited
        return body


class QueueServicer(queue_pb2_grpc.QueueServiceServicer):
    def __init__(self, room: WaitingRoom, watchers: QueueWatchers, stream_tokens: StreamTokenSigner) -> None:
        self._room = room
        self._watchers = watchers
        self._stream_tokens = stream_tokens

    async def JoinQueue(self, request, context):
        user_id = require_user_id(context.invocation_metadata())
        event_id = require_numeric_id(request.event_id, "event_id")
        optional_request_id(request.request_id)  # joining is idempotent per fan; the id is only validated
        return render_ticket(await self._room.join(user_id, event_id))

    async def WatchQueue(self, request, context):
        """Yields serialized QueueTicket messages (see the module docstring)."""
        user_id = require_user_id(context.invocation_metadata())
        event_id = require_numeric_id(request.event_id, "event_id")
        ticket_id = str(require_uuid(request.ticket_id, "ticket_id"))
        ticket = await self._room.ticket_of(user_id, event_id, ticket_id)
        async for message in self._watchers.watch(ticket):
            yield message

    async def CreateStreamToken(self, request, context):
        minted = self._stream_tokens.issue(require_user_id(context.invocation_metadata()))
        return queue_pb2.StreamToken(token=minted.token, expire_time=timestamp(minted.expires_at))
