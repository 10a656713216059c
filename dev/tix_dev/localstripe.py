"""Run localstripe (the local Stripe stand-in) the way Tix needs it: on loopback only, with no pickle on disk.

localstripe's own entry point binds every interface (``::``) and pickles its whole store to
``/tmp/localstripe.pickle`` on every write (and reads a stale one back at start), which makes each API call
O(store size) and leaks state between runs; its list endpoints also scan the whole store, and every charge export
lists the charge's refunds that way. This launcher serves the same aiohttp application on one host and port, keeps
the store in memory only with a per-type index, and silences the per-request access log.

    python -m tix_dev.localstripe --host 127.0.0.1 --port 8420

localstripe also ignores idempotency keys and sends each webhook once, about a second after the event, without
retries: callers must not rely on either for correctness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tix_dev.processes import stop_process
from tix_dev.readiness import http_answers, wait_until

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8420  # the port of DEVELOPMENT_STRIPE_API_BASE
DEFAULT_WEBHOOK_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
)


def _memory_only_app() -> Any:
    """localstripe's aiohttp app, its store kept in memory only and indexed by object type."""
    from localstripe import resources
    from localstripe.errors import UserError
    from localstripe.server import app

    class IndexedStore(resources.Store):
        """Writes no longer pickle the store to /tmp; the list endpoints read a per-type index instead of scanning
        every object (a charge's ``refunds`` is such a list, so each PaymentIntent export was O(store) and a sale
        of thousands of payments went quadratic)."""

        def dump_to_disk(self) -> None:
            pass

        def of_type(self, object_name: str) -> dict[str, object]:
            by_type: dict[str, dict[str, object]] = self.__dict__.setdefault("by_type", {})
            return by_type.setdefault(object_name, {})

        def __setitem__(self, key: str, value: object) -> None:
            dict.__setitem__(self, key, value)
            self.of_type(key.split(":", 1)[0])[key] = value

        def __delitem__(self, key: str) -> None:
            dict.__delitem__(self, key)
            self.of_type(key.split(":", 1)[0]).pop(key, None)

        def clear(self) -> None:
            dict.clear(self)
            self.__dict__.pop("by_type", None)

    store = resources.store
    store.__class__ = IndexedStore
    for key, value in dict.items(store):
        store.of_type(key.split(":", 1)[0])[key] = value

    def list_all(
        cls: Any, url: str, limit: int | None = None, starting_after: str | None = None, **kwargs: object
    ) -> Any:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = resources.List(url, limit=limit, starting_after=starting_after)
        listed._list = list(store.of_type(cls.object).values())
        return listed

    resources.StripeObject._api_list_all = classmethod(list_all)
    # Before localstripe's own middlewares (its authentication would refuse /_tix/ without a secret key).
    app.middlewares.insert(0, _stripe_js_stand_in())
    # try_load_from_disk() is never called, so no stale pickle is read either.
    return app


STRIPE_JS = Path(__file__).with_name("localstripe_v3.js")
_CONFIRM_CARD = re.compile(r"^/_tix/payment_intents/(pi_\w+)/confirm_card$")


def confirm_card(payment_intent_id: str, given: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What Stripe.js's confirmCardPayment does on Stripe's side: check the client secret, make a card
    PaymentMethod from the fields, attach it and confirm. (HTTP status, PaymentIntent or {"error": ...})."""
    from localstripe import resources
    from localstripe.errors import UserError

    def error(status: int, message: str, code: str = "") -> tuple[int, dict[str, Any]]:
        kind = "card_error" if status == 402 else "invalid_request_error"
        return status, {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}

    try:
        intent = resources.PaymentIntent._api_retrieve(payment_intent_id)
        if not isinstance(given.get("client_secret"), str) or given["client_secret"] != intent.client_secret:
            return error(401, "The client secret does not match this payment.")
        card = given.get("card")
        if not isinstance(card, dict):
            return error(400, "Card details are missing.")
        fields = {key: str(card.get(key, "")) for key in ("number", "exp_month", "exp_year", "cvc")}
        if len(fields["number"]) != 16 or not fields["number"].isdigit():
            return error(402, "Your card number is incomplete.", "incomplete_number")
        if not fields["exp_month"].isdigit() or not fields["exp_year"].isdigit():
            return error(402, "Your card's expiry date is incomplete.", "incomplete_expiry")
        if len(fields["cvc"]) != 3:
            return error(402, "Your card's security code is incomplete.", "incomplete_cvc")
        method = resources.PaymentMethod._api_create(type="card", card=fields)
        if method._attaching_is_declined():  # 4000 0000 0000 0002, Stripe's generic decline
            return error(402, "Your card was declined.", "card_declined")
        resources.PaymentIntent._api_update(payment_intent_id, payment_method=method.id)
        confirmed = resources.PaymentIntent._api_confirm(payment_intent_id)
    except UserError as failure:
        body = getattr(failure, "body", None) or {}
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return error(getattr(failure, "code", 400), message or str(failure), "card_declined")
    exported: dict[str, Any] = confirmed._export()
    if exported.get("status") not in ("succeeded", "processing", "requires_capture"):
        return 402, {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined.",
                               "payment_intent": exported}}
    return 200, exported


def _stripe_js_stand_in() -> Any:
    from aiohttp import web

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            return web.Response(text=STRIPE_JS.read_text(), content_type="application/javascript")
        match = _CONFIRM_CARD.match(request.path)
        if request.method == "POST" and match:
            try:
                given = json.loads(await request.read() or b"{}")
            except ValueError:
                given = {}
            status, answer = confirm_card(match.group(1), given if isinstance(given, dict) else {})
            return web.json_response(answer, status=status)
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


async def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve localstripe until SIGTERM or SIGINT."""
    from aiohttp import web

    runner = web.AppRunner(_memory_only_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port, reuse_address=True, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"localstripe listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def start_localstripe(
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    timeout: float = 20.0,
    stderr: int | None = subprocess.DEVNULL,
) -> subprocess.Popen:
    """Start a private localstripe process and return it once it answers HTTP. The caller terminates it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tix_dev.localstripe", "--host", host, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    api_base = f"http://{host}:{port}"
    try:
        # An unauthenticated API call answers 401 as soon as the app is up.
        wait_until(lambda: http_answers(f"{api_base}/v1/balance"), what=f"localstripe on {api_base}",
                   timeout=timeout, process=process)
    except BaseException:
        stop_process(process, 5)
        raise
    return process


def stop_localstripe(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a process started by ``start_localstripe`` (kill it if it lingers)."""
    stop_process(process, timeout)


def configure_webhook(
    api_base: str,
    url: str,
    secret: str,
    events: Sequence[str] | None = DEFAULT_WEBHOOK_EVENTS,
    *,
    name: str = "tix",
) -> None:
    """Register (or replace) webhook ``name``: localstripe will POST ``events`` to ``url``, signed with ``secret``.

    ``events=None`` subscribes to every event type.
    """
    body: dict[str, object] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = list(events)
    request = urllib.request.Request(
        f"{api_base.rstrip('/')}/_config/webhooks/{name}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"localstripe refused the webhook configuration: HTTP {response.status}")


def flush_localstripe(api_base: str) -> None:
    """Forget every object localstripe holds (``DELETE /_config/data``); webhook registrations stay."""
    request = urllib.request.Request(f"{api_base.rstrip('/')}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tix_dev.localstripe", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but localstripe runs without it
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
