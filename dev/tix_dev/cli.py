"""The development commands of the ``tix`` CLI, registered through the ``tix.commands`` entry point of the
tix-dev distribution: ``seed``, ``up``, ``token`` and ``edge config``. Each imports its work when it runs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

edge_app = typer.Typer(help="The Envoy edge.", no_args_is_help=True)


def token(
    user: Annotated[str, typer.Argument(help="The user id to put in the token's subject.")],
    hours: int = 24,
) -> None:
    """Print a development JWT for USER, signed with the local key Envoy trusts."""
    from tix_dev.settings import DevSettings
    from tix_dev.tokens import issue_token

    typer.echo(issue_token(DevSettings().var_dir, user, ttl_seconds=hours * 3600))


def seed(
    events: Annotated[int, typer.Option(help="How many events to create.")] = 5000,
    random_seed: Annotated[int, typer.Option("--seed", help="Same seed, same catalog.")] = 42,
    if_empty: Annotated[bool, typer.Option(help="Do nothing when the catalog has events already.")] = False,
) -> None:
    """Build the deterministic demo catalog: cities, venues with seat layouts, performers and events."""
    from tix.settings import TixSettings
    from tix_dev.seed import CatalogNotEmpty, seed_catalog

    settings = TixSettings()
    try:
        report = asyncio.run(seed_catalog(settings.database_url, events=events, seed=random_seed, if_empty=if_empty))
    except CatalogNotEmpty as exc:
        typer.echo(f"tix seed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(report.summary())


def up() -> None:
    """Run the whole mesh locally: stores, localstripe, the four services and Envoy on 127.0.0.1:8080."""
    from tix_dev.up import run_mesh

    raise typer.Exit(run_mesh())


@edge_app.command("config")
def edge_config(
    target: Annotated[str, typer.Option(help="local or k8s")] = "local",
    output: Annotated[str | None, typer.Option(help="File to write; stdout when omitted.")] = None,
    limits: Annotated[
        str | None,
        typer.Option(help='JSON file of budgets and sizes, e.g. {"fan_per_user": {"burst": 5, "per_second": 1}} '
                     "(local target; envoy/README.md lists them)."),
    ] = None,
) -> None:
    """Render the Envoy configuration for TARGET from the service registry and the descriptor set."""
    from pathlib import Path

    from tix_dev.edge import load_limits, render_config, write_k8s_web

    text = render_config(target, limits=load_limits(Path(limits))) if limits else render_config(target)
    if output:
        Path(output).write_text(text)
        if target == "k8s":  # the files the configuration names, beside it (the edge-web ConfigMap)
            write_k8s_web(Path(output).parent / "web")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command()(token)
    app.command()(seed)
    app.command()(up)
    app.add_typer(edge_app, name="edge")
