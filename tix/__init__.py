"""Tix's shared runtime: what every service imports at run time (settings, logging, metrics, database and Redis
wiring, server start-up, errors, the ``tix`` CLI's own commands). Generated protobuf code is the separate import root
``tixpb``; development tooling lives in ``tix_dev`` (the tix-dev distribution), never here."""
