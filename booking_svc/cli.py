"""The booking service's operator commands, registered with the ``tix`` CLI through the ``tix.commands`` entry
point (``tix bookings reconcile``). Importing this module is cheap: the command imports its work when it runs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

bookings_app = typer.Typer(help="Booking operations.", no_args_is_help=True)


@bookings_app.command("reconcile")
def bookings_reconcile(
    apply: Annotated[bool, typer.Option(help="Repair the drift found; without it, only report.")] = True,
    since: Annotated[
        str | None,
        typer.Option(help="Only bookings whose booking or payment changed within this time (90m, 2h, 7d)."),
    ] = None,
) -> None:
    """Compare bookings with their Stripe PaymentIntents and repair drift (no fan paid without a ticket)."""
    from booking_svc.reconcile import parse_duration, run_reconcile
    from booking_svc.settings import BookingSettings

    try:
        since_seconds = parse_duration(since) if since is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from None
    raise typer.Exit(asyncio.run(run_reconcile(BookingSettings(), apply=apply, since_seconds=since_seconds)))


@bookings_app.command("reap-holds")
def bookings_reap_holds(
    grace_seconds: Annotated[
        float | None, typer.Option(help="How old a hold must be to count as leaked (default: the setting).")
    ] = None,
) -> None:
    """Delete Redis seat holds that no live booking stands behind (see booking_svc.reaper)."""
    from booking_svc.reaper import run_reap_command
    from booking_svc.settings import BookingSettings

    raise typer.Exit(asyncio.run(run_reap_command(BookingSettings(), grace_seconds)))


def register(app: typer.Typer) -> None:
    app.add_typer(bookings_app, name="bookings")
