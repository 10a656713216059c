"""The search service's operator commands, registered with the ``tix`` CLI through the ``tix.commands`` entry point:
``tix search index`` (the outbox indexer alone, without serving) and ``tix search reindex`` (rebuild the configured
backend's index from the catalog). Importing this module is cheap: each command imports its work when it runs."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

search_app = typer.Typer(help="Search index operations.", no_args_is_help=True)


@search_app.command("index")
def search_index() -> None:
    """Run the outbox indexer of the configured backend until SIGTERM (standby while another process leads)."""
    from search_svc.settings import SearchSettings

    asyncio.run(_run_indexers(SearchSettings()))


async def _run_indexers(settings: object) -> None:
    from search_svc.runner import open_indexers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_indexers(settings) as indexers:  # type: ignore[arg-type]
        tasks = [asyncio.create_task(indexer.run(), name=indexer.sink.name) for indexer in indexers]
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopped.cancel()


@search_app.command("reindex")
def search_reindex(
    batch_size: Annotated[int, typer.Option(help="Events per batch.", min=1)] = 5_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Rebuild the configured backend's index from the catalog: PostgreSQL documents in place; Elasticsearch into a
    new index, then the alias moves to it in one step (searches never see a half-built index)."""
    from search_svc.runner import reindex
    from search_svc.settings import SearchSettings

    typer.echo(asyncio.run(reindex(SearchSettings(), batch_size=batch_size, progress=progress)))


def register(app: typer.Typer) -> None:
    app.add_typer(search_app, name="search")
