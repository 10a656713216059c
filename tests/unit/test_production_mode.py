"""TIX_ENVIRONMENT=production: every settings class refuses the development secrets and keys written in the
repository (and the placeholders of the k8s example), naming the variable to set; development and tests run on
them as before."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from booking_svc.settings import BookingSettings
from event_svc.settings import EventSettings
from queue_svc.settings import QueueSettings
from search_svc.settings import SearchSettings
from tix.settings import InsecureSettings


def _ec_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


LIVE = {
    "admission_secret": secrets.token_hex(32),
    "stripe_api_key": "sk_live_" + secrets.token_hex(16),
    "stripe_webhook_secret": "whsec_" + secrets.token_hex(16),
    "stripe_api_base": "https://api.stripe.com",
}


@pytest.mark.parametrize("settings_class", [BookingSettings, QueueSettings, EventSettings, SearchSettings])
def test_development_defaults_are_fine_outside_production(settings_class):
    for environment in ("development", "test"):
        assert settings_class(environment=environment).environment == environment


def test_booking_in_production_names_every_development_secret_it_was_given():
    with pytest.raises(InsecureSettings) as refused:
        BookingSettings(environment="production")
    message = str(refused.value)
    for variable in ("TIX_ADMISSION_SECRET", "TIX_STRIPE_API_KEY", "TIX_STRIPE_WEBHOOK_SECRET", "TIX_STRIPE_API_BASE"):
        assert variable in message
    assert "dev-admission-secret" not in message  # names the variable, never echoes a value


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("stripe_api_key", "sk_test_" + "a" * 30, "TIX_STRIPE_API_KEY"),
        ("stripe_api_key", "sk_test_CHANGE_ME", "TIX_STRIPE_API_KEY"),
        ("stripe_webhook_secret", "whsec_CHANGE_ME", "TIX_STRIPE_WEBHOOK_SECRET"),
        ("admission_secret", "CHANGE_ME_admission_secret", "TIX_ADMISSION_SECRET"),
        ("admission_secret", "short", "TIX_ADMISSION_SECRET"),
    ],
)
def test_test_mode_keys_placeholders_and_short_secrets_are_refused_too(field, value, variable):
    with pytest.raises(InsecureSettings) as refused:
        BookingSettings(environment="production", **{**LIVE, field: value})
    assert [problem.split()[0] for problem in refused.value.problems] == [variable]


def test_booking_starts_in_production_with_secrets_of_its_own():
    assert BookingSettings(environment="production", **LIVE).stripe_api_key.startswith("sk_live_")


def test_queue_refuses_the_development_stream_token_key():
    with pytest.raises(InsecureSettings) as refused:
        QueueSettings(environment="production", admission_secret=LIVE["admission_secret"])
    assert [problem.split()[0] for problem in refused.value.problems] == ["TIX_STREAM_TOKEN_PRIVATE_KEY"]
    settings = QueueSettings(
        environment="production", admission_secret=LIVE["admission_secret"], stream_token_private_key=_ec_key()
    )
    assert settings.environment == "production"


def test_production_refusal_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TIX_ENVIRONMENT", "production")
    with pytest.raises(InsecureSettings):
        QueueSettings()
    monkeypatch.setenv("TIX_ADMISSION_SECRET", LIVE["admission_secret"])
    monkeypatch.setenv("TIX_STREAM_TOKEN_PRIVATE_KEY", _ec_key())
    assert QueueSettings().environment == "production"
