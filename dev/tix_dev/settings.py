"""Settings of the development tooling, on the runtime's base (env prefix ``TIX_``)."""

from __future__ import annotations

from pathlib import Path

from tix.settings import TixSettings

# The checkout this package was installed from (editable: dev/tix_dev/ -> the repository root).
REPO_ROOT = Path(__file__).resolve().parents[2]
# The descriptor set `make proto` writes: the edge transcodes REST with it, the registry reads routes from it.
DESCRIPTOR_PATH = REPO_ROOT / "gen" / "tix.pb"


class DevSettings(TixSettings):
    """What ``tix up``, ``tix token`` and ``tix edge config`` read."""

    # Where development keys (JWT signing key, JWKS), the rendered Envoy config and the mesh's logs live.
    var_dir: Path = REPO_ROOT / "var"
