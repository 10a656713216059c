"""Tix's development tooling: the local mesh (``tix up``), the demo catalog (``tix seed``), development tokens
(``tix token``), the Envoy configuration renderer (``tix edge config``), the localstripe launcher, the proto
generation step, and the helpers tests and benchmarks share (free ports, readiness, child processes).

It is the tix-dev distribution (``dev/pyproject.toml``), installed by ``make install`` and never into the
production image; services never import it (``tests/integration/test_import_boundaries.py`` checks).
"""
