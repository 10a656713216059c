"""QueueService: proto in, waiting-room call, proto out."""

from __future__ import annotations

from google.protobuf import duration_pb2

from queue_svc.domain import QueueTicketView, TicketState, WaitingRoom
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


def render_ticket(view: QueueTicketView) -> queue_pb2.QueueTicket:
    ticket = queue_pb2.QueueTicket(
        ticket_id=view.ticket_id,
        event_id=str(view.event_id),
        state=_STATES[view.state],
        position=view.position,
        estimated_wait=duration_pb2.Duration(seconds=int(view.estimated_wait_seconds)),
        join_time=timestamp(view.joined_at),
        admission_token=view.admission_token or "",
    )
    if view.admission_expires_at is not None:
        ticket.admission_expire_time.CopyFrom(timestamp(view.admission_expires_at))
    return ticket


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
        user_id = require_user_id(context.invocation_metadata())
        event_id = require_numeric_id(request.event_id, "event_id")
        ticket_id = str(require_uuid(request.ticket_id, "ticket_id"))
        ticket = await self._room.ticket_of(user_id, event_id, ticket_id)
        async for view in self._watchers.watch(ticket):
            yield render_ticket(view)

    async def CreateStreamToken(self, request, context):
        minted = self._stream_tokens.issue(require_user_id(context.invocation_metadata()))
        return queue_pb2.StreamToken(token=minted.token, expire_time=timestamp(minted.expires_at))
