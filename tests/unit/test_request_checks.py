"""The one request check of the runtime (tix.validation, run by the server interceptor before every handler) and the
page-token codec every paged list shares: hostile bytes end in INVALID_ARGUMENT naming the field, never in an
exception a handler did not expect."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tix.errors import InvalidArgument
from tix.page_tokens import MAX_TOKEN_LENGTH, decode_page_token, encode_page_token
from tix.validation import TEXT_REASON, check_request_text, text_problem, undecodable_request
from tixpb.v1 import booking_pb2, search_pb2


@pytest.mark.parametrize("text", ["Huskies", "Beyoncé", "Motörhead ²", "東京ドーム", "👩‍👩‍👧 family", "tab\tand\nnewline", ""])
def test_ordinary_text_passes(text):
    assert text_problem(text) is None


@pytest.mark.parametrize(
    ("text", "code_point"),
    [("a\x00b", "U+0000"), ("\x1b[31m", "U+001B"), ("x\x7f", "U+007F"), ("é\x85", "U+0085"),
     ("\ue000", "U+E000"), ("\uffff", "U+FFFF"), ("\U000e0080", "U+E0080"), ("\ud800", "U+D800")],
)
def test_controls_private_use_unassigned_and_surrogates_are_refused(text, code_point):
    problem = text_problem(text)
    assert problem is not None
    assert code_point in problem


def test_a_bad_string_anywhere_in_a_request_names_its_field_path():
    request = booking_pb2.ReserveSeatsRequest(
        event_id="1", seat_ids=["A-1", "A-\x002"], best_available=booking_pb2.BestAvailable(quantity=1)
    )
    with pytest.raises(InvalidArgument) as caught:
        check_request_text(request)
    assert caught.value.reason == TEXT_REASON
    assert list(caught.value.field_violations) == ["seat_ids[1]"]

    nested = booking_pb2.ReserveSeatsRequest(
        event_id="1", best_available=booking_pb2.BestAvailable(quantity=1, section_id="lower\x00")
    )
    with pytest.raises(InvalidArgument) as caught:
        check_request_text(nested)
    assert list(caught.value.field_violations) == ["best_available.section_id"]


def test_bytes_that_are_not_utf8_name_the_field_and_leak_nothing_of_the_parser():
    raw = search_pb2.SearchEventsRequest(query="ok", city="ab").SerializeToString().replace(b"ab", b"a\xff")
    error = undecodable_request(raw, search_pb2.SearchEventsRequest.DESCRIPTOR)
    assert error.field_violations == {"city": "is not valid UTF-8"}
    assert "Decode" not in error.message

    nested = booking_pb2.ReserveSeatsRequest(
        event_id="1", best_available=booking_pb2.BestAvailable(quantity=2, section_id="ab")
    ).SerializeToString().replace(b"ab", b"a\xff")
    assert list(undecodable_request(nested, booking_pb2.ReserveSeatsRequest.DESCRIPTOR).field_violations) == [
        "best_available.section_id"
    ]

    truncated = undecodable_request(b"\x0a\x05ab", booking_pb2.ReserveSeatsRequest.DESCRIPTOR)
    assert list(truncated.field_violations) == ["request"]


def test_page_tokens_round_trip():
    token = encode_page_token({"o": 40, "q": "abc123"})
    assert decode_page_token(token) == {"o": 40, "q": "abc123"}


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        _token(b"\xff\xfe"),
        _token(b"[1, 2]"),
        _token(b'{"o": true, "q": "x"}'),
        _token(b'{"o": 1.5}'),
        _token(b'{"o": NaN}'),
        _token(b'{"o": {"nested": 1}}'),
        _token(b"[" * 300 + b"]" * 300),
        "A" * (MAX_TOKEN_LENGTH + 1),
    ],
)
def test_malformed_page_tokens_are_invalid_argument_on_page_token(token):
    with pytest.raises(InvalidArgument) as caught:
        decode_page_token(token)
    assert list(caught.value.field_violations) == ["page_token"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), st.binary(max_size=400).map(_token), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
).map(lambda value: _token(json.dumps(value).encode()))))
def test_any_page_token_decodes_or_is_invalid_argument(token):
    outcome: dict[str, object] = {}
    try:
        outcome = decode_page_token(token)
    except InvalidArgument as error:
        outcome = {"refused": error.field_violations}
    if "refused" in outcome:
        assert outcome["refused"] == {"page_token": "is not a token this service issued"}
    else:
        assert all(isinstance(v, str) or type(v) is int for v in outcome.values())
