"""Tix's shared runtime: settings, logging, metrics, database and Redis wiring, server start-up, the CLI.

The generated protobuf modules (proto package ``tix.v1``) live in ``gen/tix/v1``; adding that folder to this
package's path makes them importable as ``tix.v1`` exactly as protoc's absolute imports expect.
"""

from pathlib import Path

__path__.append(str(Path(__file__).resolve().parent.parent / "gen" / "tix"))  # noqa: F821 (package __path__)
