"""Settings of the admin service (env prefix ``TIX_``): booking's settings, because it drives booking's Stripe
adapter and holds (the same Stripe key, Redis lock nodes and pacing as the booking replicas)."""

from __future__ import annotations

from booking_svc.settings import BookingSettings


class AdminSettings(BookingSettings):
    """The internal operator service; reachable inside the cluster only (never routed on the public edge)."""
