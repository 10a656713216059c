# syntax=docker/dockerfile:1
# The Tix image that k8s/ deploys as ghcr.io/tix-dev/tix:0.1.0: every service, the migrations and the CLI.
# Only the runtime distribution (tix, tixpb, the services) goes in: the development tooling (dev/, tix_dev) and its
# commands (seed, up, token, edge config) are never copied, so `tix` in the image offers serve, db and bookings.
#   docker build -t ghcr.io/tix-dev/tix:0.1.0 .
# Runs as uid 10001 on a read-only root filesystem; only /tmp needs to be writable.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tix tix
COPY gen gen
COPY event_svc event_svc
COPY search_svc search_svc
COPY booking_svc booking_svc
COPY queue_svc queue_svc
COPY admin_svc admin_svc
# Wheels for Tix and every dependency (the Elasticsearch client for TIX_SEARCH_BACKEND=elasticsearch included).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIX_HOST=0.0.0.0
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels tix \
 && groupadd --system --gid 10001 tix \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tix
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 50052 50053 50054 50055 9101 9102 9103 9104 9105
# `tix serve event|search|booking|queue|admin` runs a service; `tix db upgrade` migrates.
ENTRYPOINT ["tix"]
CMD ["serve", "event"]
