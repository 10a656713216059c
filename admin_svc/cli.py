"""Operator commands over the internal AdminService, registered with the ``tix`` CLI through the ``tix.commands``
entry point: ``tix room``, ``tix sale``, ``tix booking`` and ``tix reconcile``.

They call the admin service at ``TIX_ADMIN_ADDRESS`` (default ``127.0.0.1:50055``: in the cluster, run them in
the admin pod with ``kubectl exec``) and name the operator in the ``x-tix-operator`` metadata (``TIX_OPERATOR``,
else the login name), which the service writes to the audit log with every change. ``--json`` prints the answer as
proto3 JSON for scripts. Importing this module is cheap: a command imports grpc and the stubs when it runs.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

DEFAULT_ADMIN_ADDRESS = "127.0.0.1:50055"
TIMEOUT_SECONDS = 60.0

room_app = typer.Typer(help="An event's waiting room (AdminService).", no_args_is_help=True)
sale_app = typer.Typer(help="An event's sale (AdminService).", no_args_is_help=True)
booking_app = typer.Typer(help="Any fan's booking (AdminService).", no_args_is_help=True)

EventArg = Annotated[str, typer.Argument(help="The event id.", show_default=False)]
BookingArg = Annotated[str, typer.Argument(help="The booking id (a UUID).", show_default=False)]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer as proto3 JSON.")]


def operator_name() -> str:
    return os.environ.get("TIX_OPERATOR") or getpass.getuser()


def call(method: str, request: Any, *, as_json: bool, render: Callable[[Any], str]) -> Any:
    """One AdminService call; a refusal prints the status and its reason and exits 1."""
    import grpc
    from google.protobuf.json_format import MessageToJson

    from tix.audit import OPERATOR_METADATA_KEY
    from tixpb.v1 import admin_pb2_grpc

    address = os.environ.get("TIX_ADMIN_ADDRESS", DEFAULT_ADMIN_ADDRESS)
    with grpc.insecure_channel(address) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            reply = getattr(stub, method)(
                request, metadata=[(OPERATOR_METADATA_KEY, operator_name())], timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError as error:
            print(f"tix: {method} failed: {error.code().name}: {error.details()}", file=sys.stderr)
            raise typer.Exit(1) from None
    typer.echo(MessageToJson(reply, indent=2) if as_json else render(reply))
    return reply


def _duration(seconds: int) -> str:
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m{second:02d}s" if hours else f"{minute}m{second:02d}s"


def render_room(status: Any) -> str:
    state = "off" if not status.enabled else ("PAUSED" if status.paused else "admitting")
    clear = _duration(status.estimated_time_to_clear.seconds) if status.HasField("estimated_time_to_clear") else "-"
    return "\n".join(
        [
            f"event {status.event_id}: waiting room {state}",
            f"  rate {status.rate_per_second}/s configured, {status.admission_rate:.1f}/s measured;"
            f" at most {status.max_active} shoppers",
            f"  waiting {status.waiting} (pre-queue {status.pre_queue}), admitted {status.admitted},"
            f" active shoppers {status.active_shoppers}",
            f"  time to clear {clear}; sale starts {status.sale_start_time.ToDatetime().isoformat()}Z",
        ]
    )


def render_sale(state: Any) -> str:
    from tixpb.v1 import event_pb2

    status = event_pb2.SaleStatus.Name(state.status).removeprefix("SALE_STATUS_").lower()
    ends = state.sale_end_time.ToDatetime().isoformat() + "Z" if state.HasField("sale_end_time") else "-"
    return (
        f"event {state.event_id}: {status}; sale starts {state.sale_start_time.ToDatetime().isoformat()}Z,"
        f" closed {ends}; confirmed bookings {state.confirmed_bookings}"
    )


def render_booking(booking: Any) -> str:
    from tixpb.v1 import booking_pb2

    status = booking_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_").lower()
    payment = booking_pb2.PaymentStatus.Name(booking.payment.status).removeprefix("PAYMENT_STATUS_").lower()
    seats = ", ".join(seat.seat_id for seat in booking.seats)
    reason = f" ({booking.status_reason})" if booking.status_reason else ""
    return (
        f"booking {booking.booking_id}: {status}{reason}\n"
        f"  fan {booking.user_id}, event {booking.event_id}, seats {seats}\n"
        f"  total {booking.total.amount_minor / 100:.2f} {booking.total.currency_code};"
        f" payment {booking.payment.payment_intent_id or '-'} {payment}"
    )


def render_reconcile(report: Any) -> str:
    return f"{report.summary}\n{'consistent' if report.consistent else 'NOT consistent'}"


def _room(method: str, request_type: str, event: str, as_json: bool, **fields: Any) -> None:
    from tixpb.v1 import admin_pb2

    call(method, getattr(admin_pb2, request_type)(event_id=event, **fields), as_json=as_json, render=render_room)


@room_app.command("status")
def room_status(event: EventArg, as_json: JsonOpt = False) -> None:
    """Waiting, admitted, active shoppers, admission rate and time to clear."""
    _room("GetWaitingRoom", "GetWaitingRoomRequest", event, as_json)


@room_app.command("enable")
def room_enable(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Turn the waiting room on: buying needs an admission token from now on."""
    _room("EnableWaitingRoom", "EnableWaitingRoomRequest", event, as_json, reason=reason)


@room_app.command("disable")
def room_disable(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Turn the waiting room off: fans reserve seats directly."""
    _room("DisableWaitingRoom", "DisableWaitingRoomRequest", event, as_json, reason=reason)


@room_app.command("pause")
def room_pause(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Stop admitting fans (they keep their places)."""
    _room("PauseWaitingRoom", "PauseWaitingRoomRequest", event, as_json, reason=reason)


@room_app.command("resume")
def room_resume(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Admit again at the configured rate."""
    _room("ResumeWaitingRoom", "ResumeWaitingRoomRequest", event, as_json, reason=reason)


@room_app.command("set-rate")
def room_set_rate(
    event: EventArg,
    rate: Annotated[int, typer.Argument(help="Fans admitted per second.", show_default=False)],
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Set how many fans per second the room admits."""
    _room("SetAdmissionRate", "SetAdmissionRateRequest", event, as_json, rate_per_second=rate, reason=reason)


@room_app.command("set-max-active")
def room_set_max_active(
    event: EventArg,
    max_active: Annotated[int, typer.Argument(help="Admitted fans shopping at once.", show_default=False)],
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Set the cap on admitted fans shopping at once."""
    _room("SetMaxActiveShoppers", "SetMaxActiveShoppersRequest", event, as_json, max_active=max_active, reason=reason)


def _sale(method: str, request_type: str, event: str, reason: str, as_json: bool) -> None:
    from tixpb.v1 import admin_pb2

    request = getattr(admin_pb2, request_type)(event_id=event, reason=reason)
    call(method, request, as_json=as_json, render=render_sale)


@sale_app.command("open")
def sale_open(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Open the sale now (and lift an earlier close)."""
    _sale("OpenSale", "OpenSaleRequest", event, reason, as_json)


@sale_app.command("close")
def sale_close(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """End the sale now; bookings made stay."""
    _sale("CloseSale", "CloseSaleRequest", event, reason, as_json)


@sale_app.command("cancel")
def sale_cancel(event: EventArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Cancel the event: nothing more is sold (refund its bookings with `tix booking refund`)."""
    _sale("CancelSale", "CancelSaleRequest", event, reason, as_json)


@booking_app.command("show")
def booking_show(booking: BookingArg, as_json: JsonOpt = False) -> None:
    """Any fan's booking, with its payment."""
    from tixpb.v1 import admin_pb2

    call("GetBooking", admin_pb2.AdminServiceGetBookingRequest(booking_id=booking), as_json=as_json, render=render_booking)


@booking_app.command("cancel")
def booking_cancel(booking: BookingArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Cancel an unpaid reservation: seats back on sale, PaymentIntent cancelled."""
    from tixpb.v1 import admin_pb2

    request = admin_pb2.AdminServiceCancelBookingRequest(booking_id=booking, reason=reason)
    call("CancelBooking", request, as_json=as_json, render=render_booking)


@booking_app.command("refund")
def booking_refund(booking: BookingArg, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Refund a confirmed booking through Stripe: seats back on sale."""
    from tixpb.v1 import admin_pb2

    request = admin_pb2.RefundBookingRequest(booking_id=booking, reason=reason)
    call("RefundBooking", request, as_json=as_json, render=render_booking)


def reconcile(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report the drift.")] = False,
    since: Annotated[
        str | None, typer.Option(help="Only bookings changed within this time (90m, 2h, 7d); default: every booking.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare bookings with Stripe and repair the drift, through the admin service (exit 1 when inconsistent)."""
    from google.protobuf import duration_pb2

    from booking_svc.reconcile import parse_duration
    from tixpb.v1 import admin_pb2

    request = admin_pb2.ReconcileBookingsRequest(dry_run=dry_run)
    if since is not None:
        try:
            request.since.CopyFrom(duration_pb2.Duration(seconds=round(parse_duration(since))))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--since") from None
    report = call("ReconcileBookings", request, as_json=as_json, render=render_reconcile)
    raise typer.Exit(0 if report.consistent else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(room_app, name="room")
    app.add_typer(sale_app, name="sale")
    app.add_typer(booking_app, name="booking")
    app.command("reconcile")(reconcile)
