"""The ``tix`` command: the runtime's own commands (``db upgrade``, ``serve``) and the ones packages register.

Other commands arrive through the ``tix.commands`` entry points, each a ``register(app)`` function: the booking
service adds ``bookings reconcile``; the development tooling (the tix-dev distribution, never in the production
image) adds ``seed``, ``up``, ``token`` and ``edge config``. So the runtime imports no service and no development
module, and a command exists exactly where the package that implements it is installed.
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from tix.settings import InsecureSettings, TixSettings

COMMANDS_GROUP = "tix.commands"

app = typer.Typer(help="Tix: ticketing as a gRPC service mesh.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
catalog_app = typer.Typer(help="The catalog: venues, performers and events.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


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

    try:
        definition = load_definition(service)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="SERVICE") from error
    entry = SERVICES[service]
    settings = definition.settings_type()
    overrides: dict[str, object] = {}
    if "port" not in settings.model_fields_set:
        overrides["port"] = entry.port
    if "metrics_port" not in settings.model_fields_set:
        overrides["metrics_port"] = entry.metrics_port
    if entry.http_port and "http_port" in type(settings).model_fields and "http_port" not in settings.model_fields_set:
        overrides["http_port"] = entry.http_port
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    run(definition, settings.model_copy(update=overrides))


@catalog_app.command("apply")
def catalog_apply(
    file: Annotated[Path, typer.Argument(help="A catalog file, YAML or JSON (docs/catalog-files.md).")],
    check: Annotated[bool, typer.Option("--check", help="Validate only (against the database too); write nothing.")]
    = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Add or update the venues, performers and events of FILE by their external ids (applying it again changes
    nothing). The whole file is validated first; problems are listed with where they are, and nothing is written."""
    from tix.catalog_files import CatalogFileError, load_catalog

    try:
        catalog = load_catalog(file)
        asyncio.run(_apply_catalog(catalog, str(file), check=check, progress=progress))
    except CatalogFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


async def _apply_catalog(catalog: object, source: str, *, check: bool, progress: bool) -> None:
    import getpass
    import os

    from redis.asyncio import Redis

    from tix.catalog_apply import apply_catalog, check_against_database
    from tix.catalog_files import CatalogFile
    from tix.db import create_engine

    assert isinstance(catalog, CatalogFile)
    settings = TixSettings()
    engine = create_engine(settings, pool_size=2)
    redis = Redis.from_url(settings.redis_url)
    try:
        if check:
            async with engine.connect() as conn:
                await check_against_database(conn, catalog, source)
            typer.echo(f"{source}: valid ({len(catalog.venues)} venues, {len(catalog.performers)} performers, "
                       f"{len(catalog.events)} events)")
            return
        actor = os.environ.get("TIX_OPERATOR") or getpass.getuser()
        with typer.progressbar(length=catalog.size, label="applying", hidden=not progress) as bar:
            report = await apply_catalog(engine, redis, catalog, source=source, actor=actor, on_progress=bar.update)
        typer.echo(report.summary())
        if report.stale_caches:
            typer.echo(f"warning: Redis was unreachable; {report.stale_caches} event page(s) may show the old "
                       "details until their cache entries expire", err=True)
    finally:
        await redis.aclose()
        await engine.dispose()


@app.command("preflight-edge")
def preflight_edge(
    jwks: Annotated[list[Path], typer.Option(help="A key set the edge verifies tokens with (repeat for each).")],
) -> None:
    """Refuse (exit 2) in production when the edge's key sets hold a development or placeholder key; the edge pod
    runs this before Envoy starts, since Envoy itself cannot tell a development key from a real one."""
    from tix.identity import jwks_problems

    settings = TixSettings()
    problems = [problem for path in jwks for problem in jwks_problems(path)]
    if settings.environment == "production" and problems:
        raise InsecureSettings("the edge", problems)
    for problem in problems:
        typer.echo(f"warning ({settings.environment}): {problem}", err=True)
    typer.echo(f"edge keys checked for {settings.environment}: {len(jwks)} key set(s)")


def register_commands(target: typer.Typer = app) -> None:
    """Let every installed package that declares a ``tix.commands`` entry point add its commands."""
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(target)


def main() -> None:
    register_commands()
    try:
        app()
    except InsecureSettings as error:
        # A clear refusal, not a traceback: which variables to set, and nothing of the values.
        print(f"tix: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
