"""The ``tix`` command: migrations, demo data, tokens, running services and the local mesh, operations."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tix.settings import TixSettings

app = typer.Typer(help="Tix: ticketing as a gRPC service mesh.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
bookings_app = typer.Typer(help="Booking operations.", no_args_is_help=True)
edge_app = typer.Typer(help="The Envoy edge.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(bookings_app, name="bookings")
app.add_typer(edge_app, name="edge")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head", create: bool = typer.Option(True, help="Create the database if missing.")) -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from tix.db import ensure_database
    from tix.migrate import upgrade

    settings = TixSettings()
    if create and asyncio.run(ensure_database(settings.database_url)):
        typer.echo("created database")
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="event, search, booking or queue")],
    port: Annotated[int | None, typer.Option(help="Overrides TIX_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes sharing the port (SO_REUSEPORT).")] = None,
) -> None:
    """Run one gRPC service until SIGTERM."""
    from tix.server import serve as run
    from tix.services import SERVICES, load_definition

    definition = load_definition(service)
    entry = SERVICES[service]
    overrides: dict[str, object] = {}
    settings = definition.settings_type()
    if "port" not in settings.model_fields_set:
        overrides["port"] = entry.port
    if "metrics_port" not in settings.model_fields_set:
        overrides["metrics_port"] = entry.metrics_port
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    run(definition, settings.model_copy(update=overrides))


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="The user id to put in the token's subject.")],
    hours: int = 24,
) -> None:
    """Print a development JWT for USER, signed with the local key Envoy trusts."""
    from tix.identity import issue_token

    typer.echo(issue_token(TixSettings().var_dir, user, ttl_seconds=hours * 3600))


@app.command()
def seed(
    events: Annotated[int, typer.Option(help="How many events to create.")] = 5000,
    random_seed: Annotated[int, typer.Option("--seed", help="Same seed, same catalog.")] = 42,
    if_empty: Annotated[bool, typer.Option(help="Do nothing when the catalog has events already.")] = False,
) -> None:
    """Build the deterministic demo catalog: cities, venues with seat layouts, performers and events."""
    from tix.seed import CatalogNotEmpty, seed_catalog

    settings = TixSettings()
    try:
        report = asyncio.run(seed_catalog(settings.database_url, events=events, seed=random_seed, if_empty=if_empty))
    except CatalogNotEmpty as exc:
        typer.echo(f"tix seed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(report.summary())


@app.command()
def up() -> None:
    """Run the whole mesh locally: stores, localstripe, the four services and Envoy on 127.0.0.1:8080."""
    from tix.up import run_mesh

    raise typer.Exit(run_mesh())


@edge_app.command("config")
def edge_config(
    target: Annotated[str, typer.Option(help="local or k8s")] = "local",
    output: Annotated[str | None, typer.Option(help="File to write; stdout when omitted.")] = None,
) -> None:
    """Render the Envoy configuration for TARGET from the service registry and the descriptor set."""
    from tix.edge import render_config

    text = render_config(target)
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        typer.echo(text)


@bookings_app.command("reconcile")
def bookings_reconcile(
    apply: Annotated[bool, typer.Option(help="Repair the drift found; without it, only report.")] = True,
) -> None:
    """Compare bookings with their Stripe PaymentIntents and repair drift (no fan paid without a ticket)."""
    from booking_svc.reconcile import run_reconcile

    raise typer.Exit(asyncio.run(run_reconcile(apply=apply)))


if __name__ == "__main__":
    app()
