"""Pure helpers of the shared runtime: admission tokens, identity metadata, input validation, error statuses."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tix.admission import issue_admission_token, verify_admission_token
from tix.errors import Aborted, InvalidArgument, PermissionDenied, Unauthenticated
from tix.identity import require_user_id, user_id_from_metadata
from tix.server import status_for
from tix.validation import optional_request_id, page_size, require_numeric_id, require_uuid
from tix_dev.tokens import ensure_dev_keys, issue_token

SECRET = "test-admission-secret-of-at-least-32-bytes"


def test_admission_token_round_trips_for_its_user_and_event():
    token = issue_admission_token(SECRET, user_id="fan-1", event_id=7, ticket_id="t-1", ttl_seconds=60)
    admitted = verify_admission_token(SECRET, token, user_id="fan-1", event_id=7)
    assert (admitted.user_id, admitted.event_id, admitted.ticket_id) == ("fan-1", 7, "t-1")


@pytest.mark.parametrize(
    ("user", "event", "secret"),
    [("fan-2", 7, SECRET), ("fan-1", 8, SECRET), ("fan-1", 7, "another-admission-secret-of-32-bytes!")],
)
def test_admission_token_for_another_fan_event_or_key_is_refused(user, event, secret):
    token = issue_admission_token(secret, user_id="fan-1", event_id=7, ticket_id="t-1", ttl_seconds=60)
    with pytest.raises(PermissionDenied) as caught:
        verify_admission_token(SECRET, token, user_id=user, event_id=event)
    assert caught.value.reason == "ADMISSION_REQUIRED"


def test_expired_or_missing_admission_token_is_refused():
    expired = jwt.encode(
        {"iss": "tix-queue", "sub": "fan-1", "evt": "7", "jti": "t", "exp": int(time.time()) - 5}, SECRET, "HS256"
    )
    for token in (expired, "", "not-a-jwt"):
        with pytest.raises(PermissionDenied) as caught:
            verify_admission_token(SECRET, token, user_id="fan-1", event_id=7)
        assert caught.value.reason == "ADMISSION_REQUIRED"


def test_user_id_comes_only_from_the_edge_metadata():
    assert user_id_from_metadata([("x-user-id", "fan-1"), ("other", "x")]) == "fan-1"
    assert user_id_from_metadata([("x-user-id", "")]) is None
    assert user_id_from_metadata([("x-user-id", "x" * 200)]) is None
    with pytest.raises(Unauthenticated):
        require_user_id([("authorization", "Bearer whatever")])


def test_dev_tokens_verify_against_the_generated_jwks(tmp_path):
    token = issue_token(tmp_path, "fan-9")
    _, jwks_path = ensure_dev_keys(tmp_path)
    jwks = jwt.PyJWKSet.from_json(jwks_path.read_text())
    claims = jwt.decode(token, jwks.keys[0].key, algorithms=["RS256"], audience="tix")
    assert claims["sub"] == "fan-9"
    assert jwt.get_unverified_header(token)["kid"] == jwks.keys[0].key_id


def test_ids_request_ids_and_page_sizes_are_validated():
    assert require_numeric_id("42", "event_id") == 42
    for bad in ("", "0", "-1", "abc", "1" * 30, "4 2"):
        with pytest.raises(InvalidArgument):
            require_numeric_id(bad, "event_id")
    with pytest.raises(InvalidArgument):
        require_uuid("nope", "booking_id")
    assert optional_request_id("") is None
    assert optional_request_id("retry-1") == "retry-1"
    with pytest.raises(InvalidArgument):
        optional_request_id("has spaces")
    assert page_size(0) == 20
    assert page_size(500) == 100
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_domain_errors_map_to_codes_with_error_info():
    status = status_for(Aborted("SEAT_UNAVAILABLE", "taken", seat_ids="S1-A-1"))
    assert status.code == grpc.StatusCode.ABORTED
    info = error_details_pb2.ErrorInfo()
    proto = rpc_status.status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    assert proto.details[0].Unpack(info)
    assert info.reason == "SEAT_UNAVAILABLE"
    assert info.domain == "tix.dev"
    assert status_for(InvalidArgument("seat_ids", "empty")).code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_store_that_cannot_be_reached_is_unavailable_and_a_bug_is_not():
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from tix.server import store_unavailable

    assert store_unavailable(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert store_unavailable(RedisConnectionError("Connection refused"))
    assert store_unavailable(ConnectionRefusedError())
    assert not store_unavailable(ProgrammingError("SELEC 1", {}, Exception("syntax error")))
    assert not store_unavailable(KeyError("x"))
