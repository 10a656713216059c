"""Development sign-in: a name becomes a fan's token, signed with the local development key (tix_dev.tokens).

The web app's sign-in page posts ``{"name": "alice"}`` to ``POST /dev/signin`` on the local edge, which routes it
here; the answer is ``{"token": JWT, "userId": "alice", "expireTime": RFC 3339}``, the same token ``tix token alice``
prints. There is no password: this exists only on a developer's machine. It is part of the tix-dev distribution,
which the production image never contains; the process refuses to start when ``TIX_ENVIRONMENT=production``, the
local edge rendered under that setting has no route to it, and the Kubernetes edge never has one. In production the
page sends fans to the operator's identity provider instead (docs/web.md).

    python -m tix_dev.signin --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tix.identity import SUBJECT_PATTERN
from tix_dev.settings import DevSettings
from tix_dev.tokens import TokenSigner, ensure_dev_keys

SIGN_IN_PATH = "/dev/signin"
DEFAULT_PORT = 8091
MAX_NAME_LENGTH = 64
TOKEN_TTL_SECONDS = 12 * 3600
_NAME = re.compile(SUBJECT_PATTERN)


class ProductionRefused(SystemExit):
    """Raised instead of starting when the environment is production."""


def refuse_in_production(settings: DevSettings) -> None:
    if settings.environment == "production":
        raise ProductionRefused(
            "the development sign-in does not exist in production (TIX_ENVIRONMENT=production): fans sign in with "
            "the operator's identity provider"
        )


def check_name(name: object) -> str | None:
    """Why ``name`` cannot be a fan's id (None when it can)."""
    if not isinstance(name, str) or not name:
        return "name is required"
    if len(name) > MAX_NAME_LENGTH:
        return f"name is longer than {MAX_NAME_LENGTH} characters"
    if not _NAME.fullmatch(name):
        return "name may hold letters, digits and . _ : @ | + = - (starting with a letter or digit)"
    return None


def _error(status: int, code: int, reason: str, message: str) -> tuple[int, dict[str, object]]:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "tix.dev"}]
    return status, {"code": code, "message": message, "details": details}


def sign_in(signer: TokenSigner, body: bytes) -> tuple[int, dict[str, object]]:
    """The answer to one sign-in request body: (HTTP status, JSON)."""
    try:
        given = json.loads(body or b"{}")
    except ValueError:
        return _error(400, 3, "INVALID_REQUEST", "the body is not JSON")
    name = given.get("name") if isinstance(given, dict) else None
    problem = check_name(name)
    if problem is not None:
        return _error(400, 3, "INVALID_ARGUMENT", problem)
    assert isinstance(name, str)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TOKEN_TTL_SECONDS)
    token = signer.sign(name, ttl_seconds=TOKEN_TTL_SECONDS)
    return 200, {"token": token, "userId": name, "expireTime": expires.isoformat(timespec="seconds").replace("+00:00", "Z")}


async def serve(host: str, port: int, var_dir: Path) -> None:
    from aiohttp import web

    private_path, _ = ensure_dev_keys(var_dir)
    signer = TokenSigner(private_path)

    async def handle(request: web.Request) -> web.Response:
        status, answer = sign_in(signer, await request.read())
        return web.json_response(answer, status=status, headers={"Cache-Control": "no-store"})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=4096)
    app.router.add_post(SIGN_IN_PATH, handle)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"development sign-in on http://{host}:{port}{SIGN_IN_PATH}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tix_dev.signin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    settings = DevSettings()
    refuse_in_production(settings)
    asyncio.run(serve(args.host, args.port, settings.var_dir))


if __name__ == "__main__":
    main()
