"""The queue service's operator commands (``tix stream-tokens jwks``), registered through the ``tix.commands`` entry
point. The command imports its work when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

stream_tokens_app = typer.Typer(help="Stream tokens (EventSource authentication).", no_args_is_help=True)


@stream_tokens_app.command("jwks")
def stream_tokens_jwks(
    private_key: Annotated[Path, typer.Argument(help="The EC P-256 private key (PEM) the queue service signs with.")],
) -> None:
    """Print the JWKS the edge verifies stream tokens with: the public half of PRIVATE_KEY."""
    import json

    from queue_svc.stream_tokens import public_jwks

    typer.echo(json.dumps(public_jwks(private_key.read_text()), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(stream_tokens_app, name="stream-tokens")
