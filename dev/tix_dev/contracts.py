"""Checking the contracts with buf: ``buf lint`` (rules in ``buf.yaml``) and ``buf breaking`` against main's.

Both read descriptor sets, never ``.proto`` files: ``make proto`` builds ``gen/tix.pb`` with the pinned protoc and
every import included, so buf needs neither the network (the Buf Schema Registry) nor a copy of googleapis, and it
checks exactly what Envoy transcodes with. The baseline of ``buf breaking`` is the descriptor set committed at
another commit, read with ``git show``:

- ``TIX_CONTRACTS_BASELINE`` (any git revision), when set;
- on a branch: where it forked from ``main`` (``git merge-base HEAD main``), so a branch is judged by what it
  changes and not by what landed on main since;
- on main itself (CI's clean clone of main): the previous commit of main (``HEAD~1``), i.e. what the last landing
  changed.

No baseline (a repository of one commit, a commit from before the descriptor set existed) skips the check with a
note; a breaking change fails it.

    python -m tix_dev.contracts lint
    python -m tix_dev.contracts breaking
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tix_dev.settings import DESCRIPTOR_PATH, REPO_ROOT

BUF = REPO_ROOT / "node_modules" / ".bin" / "buf"
# Only our own files: the descriptor set also carries google/api, google/rpc and google/protobuf.
PROTO_DIR = "tix/v1"
MAIN = "main"


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def baseline_revision() -> tuple[str | None, str]:
    """The commit whose contracts are the baseline, and why it was chosen (or why there is none)."""
    chosen = os.environ.get("TIX_CONTRACTS_BASELINE")
    if chosen:
        commit = _git("rev-parse", "--verify", f"{chosen}^{{commit}}")
        return commit, f"TIX_CONTRACTS_BASELINE={chosen}"
    head, main = _git("rev-parse", "HEAD"), _git("rev-parse", "--verify", f"{MAIN}^{{commit}}")
    if main is not None and main != head:
        return _git("merge-base", "HEAD", MAIN), f"where this branch forked from {MAIN}"
    return _git("rev-parse", "--verify", "HEAD~1^{commit}"), f"the commit before {MAIN}'s head"


def _buf(args: Sequence[str], descriptor_set: bytes) -> int:
    if not BUF.exists():
        print(f"{BUF} is missing: run `npm ci` (make installs it)", file=sys.stderr)
        return 2
    return subprocess.run([str(BUF), *args], input=descriptor_set, cwd=REPO_ROOT, check=False).returncode


def lint() -> int:
    code = _buf(["lint", "-#format=binpb", "--path", PROTO_DIR], DESCRIPTOR_PATH.read_bytes())
    if code == 0:
        print(f"buf lint: {PROTO_DIR} follows buf.yaml")
    return code


def breaking() -> int:
    commit, why = baseline_revision()
    if commit is None:
        print(f"buf breaking: skipped, no baseline commit ({why})")
        return 0
    relative = DESCRIPTOR_PATH.relative_to(REPO_ROOT).as_posix()
    baseline = subprocess.run(
        ["git", "show", f"{commit}:{relative}"], cwd=REPO_ROOT, capture_output=True, check=False
    )
    if baseline.returncode != 0:
        print(f"buf breaking: skipped, {relative} does not exist at {commit[:12]} ({why})")
        return 0
    with tempfile.TemporaryDirectory(prefix="tix-contracts-") as scratch:
        # Outside the workspace: buf refuses an image file that lies inside a module of buf.yaml.
        against = Path(scratch) / "baseline.binpb"
        against.write_bytes(baseline.stdout)
        code = _buf(
            ["breaking", "-#format=binpb", "--path", PROTO_DIR, "--against", str(against)],
            DESCRIPTOR_PATH.read_bytes(),
        )
    if code == 0:
        print(f"buf breaking: no breaking change against {commit[:12]} ({why})")
    else:
        print(f"buf breaking: the contracts break compatibility with {commit[:12]} ({why})", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tix_dev.contracts", description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("lint", "breaking"))
    args = parser.parse_args(argv)
    return lint() if args.check == "lint" else breaking()


if __name__ == "__main__":
    sys.exit(main())
