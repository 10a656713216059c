"""AdminService over gRPC: the operator from metadata, proto in, one console call, proto out."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf import duration_pb2

from admin_svc.domain import OperatorConsole, ReconcileOutcome, RoomStatus, SaleView, require_operator
from booking_svc.repository import BookingRecord
from booking_svc.servicer import render_booking
from tix.audit import OPERATOR_METADATA_KEY
from tix.catalog import timestamp
from tix.sales import SaleStatus
from tix.validation import require_numeric_id, require_uuid
from tixpb.v1 import admin_pb2, admin_pb2_grpc, event_pb2

_SALE_STATUS = {
    SaleStatus.SCHEDULED: event_pb2.SALE_STATUS_SCHEDULED,
    SaleStatus.ON_SALE: event_pb2.SALE_STATUS_ON_SALE,
    SaleStatus.SOLD_OUT: event_pb2.SALE_STATUS_SOLD_OUT,
    SaleStatus.ENDED: event_pb2.SALE_STATUS_ENDED,
    SaleStatus.CANCELLED: event_pb2.SALE_STATUS_CANCELLED,
}


def operator_of(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == OPERATOR_METADATA_KEY:
            return require_operator(value.decode() if isinstance(value, bytes) else value)
    return require_operator(None)


def render_room(status: RoomStatus) -> admin_pb2.WaitingRoomStatus:
    settings, line = status.settings, status.line
    rendered = admin_pb2.WaitingRoomStatus(
        event_id=str(settings.event_id),
        enabled=settings.enabled,
        paused=settings.paused,
        rate_per_second=settings.rate_per_second,
        max_active=settings.max_active,
        sale_start_time=timestamp(settings.sale_starts_at),
        waiting=line.waiting,
        pre_queue=line.pre_queue,
        admitted=line.admitted,
        active_shoppers=line.active,
        admission_rate=round(line.admission_rate, 3),
    )
    if status.time_to_clear_seconds is not None:
        rendered.estimated_time_to_clear.CopyFrom(duration_pb2.Duration(seconds=round(status.time_to_clear_seconds)))
    return rendered


def render_sale(view: SaleView) -> admin_pb2.SaleState:
    window = view.facts.window
    return admin_pb2.SaleState(
        event_id=str(view.facts.event_id),
        status=_SALE_STATUS[view.status],
        sale_start_time=timestamp(window.sale_starts_at),
        sale_end_time=timestamp(window.sale_ends_at),
        event_start_time=timestamp(window.starts_at),
        cancelled=window.cancelled,
        confirmed_bookings=view.facts.confirmed_bookings,
    )


def render_reconcile(outcome: ReconcileOutcome) -> admin_pb2.ReconcileReport:
    return admin_pb2.ReconcileReport(
        checked=outcome.checked,
        paid_not_confirmed=outcome.paid_not_confirmed,
        open_intents_of_ended_bookings=outcome.open_intents_of_ended_bookings,
        refunds_owed=outcome.refunds_owed,
        repaired=outcome.repaired,
        ticket_mismatches=list(outcome.ticket_mismatches),
        unresolved=list(outcome.unresolved),
        consistent=outcome.consistent,
        summary=outcome.summary,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, console: OperatorConsole[BookingRecord]) -> None:
        self._console = console

    async def GetWaitingRoom(self, request, context):
        operator_of(context)
        return render_room(await self._console.room_status(require_numeric_id(request.event_id, "event_id")))

    async def EnableWaitingRoom(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(await self._console.enable_room(operator_of(context), event_id, request.reason))

    async def DisableWaitingRoom(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(await self._console.disable_room(operator_of(context), event_id, request.reason))

    async def PauseWaitingRoom(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(await self._console.pause_room(operator_of(context), event_id, request.reason))

    async def ResumeWaitingRoom(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(await self._console.resume_room(operator_of(context), event_id, request.reason))

    async def SetAdmissionRate(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(
            await self._console.set_rate(operator_of(context), event_id, request.rate_per_second, request.reason)
        )

    async def SetMaxActiveShoppers(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_room(
            await self._console.set_max_active(operator_of(context), event_id, request.max_active, request.reason)
        )

    async def OpenSale(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_sale(await self._console.open_sale(operator_of(context), event_id, _now(), request.reason))

    async def CloseSale(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_sale(await self._console.close_sale(operator_of(context), event_id, _now(), request.reason))

    async def CancelSale(self, request, context):
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_sale(await self._console.cancel_sale(operator_of(context), event_id, _now(), request.reason))

    async def GetBooking(self, request, context):
        operator_of(context)
        return render_booking(await self._console.booking(require_uuid(request.booking_id, "booking_id")))

    async def CancelBooking(self, request, context):
        booking_id = require_uuid(request.booking_id, "booking_id")
        return render_booking(await self._console.cancel_booking(operator_of(context), booking_id, request.reason))

    async def RefundBooking(self, request, context):
        booking_id = require_uuid(request.booking_id, "booking_id")
        return render_booking(await self._console.refund_booking(operator_of(context), booking_id, request.reason))

    async def ReconcileBookings(self, request, context):
        since = request.since.ToTimedelta().total_seconds() if request.HasField("since") else None
        outcome = await self._console.reconcile(operator_of(context), apply=not request.dry_run, since_seconds=since)
        return render_reconcile(outcome)
