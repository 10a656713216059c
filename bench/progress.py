"""tqdm settings: lively on a terminal, an occasional line when the output goes to a file or CI log."""

from __future__ import annotations

import sys


def progress_options() -> dict[str, float]:
    return {"mininterval": 0.5} if sys.stderr.isatty() else {"mininterval": 15.0}
