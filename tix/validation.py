"""Input checks: the one check of every request's text (run by the server interceptor before any handler), and
small helpers servicers share. Each failure is an InvalidArgument naming the field (a ``google.rpc.BadRequest``
field violation at the edge)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator

from google.protobuf import empty_pb2, unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from tix.errors import InvalidArgument

_NUMERIC_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def require_numeric_id(value: str, field: str) -> int:
    """Ids of catalog resources are positive integers rendered as strings."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _NUMERIC_ID.match(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not a valid id")
    return int(value)


def require_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(field, f"{value[:40]!r} is not a valid id") from None


def optional_request_id(value: str, field: str = "request_id") -> str | None:
    """AIP-155 request ids: optional; when given, 1-128 URL-safe characters."""
    if not value:
        return None
    if not _REQUEST_ID.match(value):
        raise InvalidArgument(field, "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
    return value


def page_size(value: int, *, default: int = 20, maximum: int = 100, field: str = "page_size") -> int:
    """AIP-158: negative is an error, 0 means the default, large values are clamped."""
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return default if value == 0 else min(value, maximum)


# --- the request check every RPC passes (tix.server.ServiceInterceptor) ------------------------------------------
#
# Text reaches the services from browsers, scripts and the edge's transcoder, which percent-decodes query strings
# into proto strings byte for byte. Whatever a handler does next (a SQL parameter, a Redis key, a log line, a JWT
# claim), it may assume text that is valid UTF-8 and free of control characters, because it was checked here once.

# Whitespace controls are ordinary in free text (search strips them); every other C0/C1 control is refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Unicode categories no request has a use for: controls, surrogates, private use, unassigned (noncharacters too).
_REFUSED_CATEGORIES = {
    "Cc": "the control character",
    "Cs": "the surrogate",
    "Co": "the private-use character",
    "Cn": "the unassigned code point",
}
TEXT_REASON = "INVALID_TEXT"


def text_problem(value: str) -> str | None:
    """What is wrong with ``value`` as request text, or None when it is fine."""
    if value.isascii():
        found = _ASCII_CONTROL.search(value)
        return None if found is None else f"contains the control character U+{ord(found.group()):04X}"
    for char in value:
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None and char not in _ALLOWED_CONTROLS:
            return f"contains {kind} U+{ord(char):04X}"
    return None


def check_request_text(message: Message) -> None:
    """Refuse a request with a string field (at any depth) that :func:`text_problem` finds wrong; the violation
    names the field's path (``best_available.section_id``, ``seat_ids[2]``)."""
    for path, value in _strings(message, ""):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidArgument(path, problem, reason=TEXT_REASON)


def _strings(message: Message, prefix: str) -> Iterator[tuple[str, str]]:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            if _is_repeated(field):
                for index, item in enumerate(value):
                    yield f"{path}[{index}]", item
            else:
                yield path, value
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if isinstance(key, str):
                        yield f"{path}.key", key
                    if isinstance(item, str):
                        yield f"{path}[{key!r}]", item
                    elif isinstance(item, Message):
                        yield from _strings(item, f"{path}[{key!r}].")
            elif _is_repeated(field):
                for index, item in enumerate(value):
                    yield from _strings(item, f"{path}[{index}].")
            else:
                yield from _strings(value, f"{path}.")


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def undecodable_request(raw: bytes, descriptor: Descriptor) -> InvalidArgument:
    """The error for a request the generated code could not parse: the field whose bytes are not UTF-8 when one
    is (the usual case: ``%FF`` in a URL), else the request as a whole. Nothing of the parser's message leaks."""
    path = _bad_utf8_field(raw, descriptor, "")
    if path:
        return InvalidArgument(path, "is not valid UTF-8", reason=TEXT_REASON)
    return InvalidArgument("request", f"is not a valid {descriptor.full_name} message", reason="INVALID_REQUEST")


def _bad_utf8_field(raw: bytes, descriptor: Descriptor, prefix: str, depth: int = 0) -> str | None:
    """Walk the wire format (every field is an unknown field of an empty message) to the first string field whose
    bytes are not UTF-8."""
    if depth > 32:
        return None
    try:
        unknown = unknown_fields.UnknownFieldSet(empty_pb2.Empty.FromString(raw))
    except DecodeError:
        return None
    seen: dict[int, int] = {}
    for index in range(len(unknown)):
        item = unknown[index]
        field = descriptor.fields_by_number.get(item.field_number)
        if field is None or item.wire_type != _LENGTH_DELIMITED:
            continue
        occurrence = seen.get(item.field_number, 0)
        seen[item.field_number] = occurrence + 1
        path = f"{prefix}{field.name}" + (f"[{occurrence}]" if _is_repeated(field) else "")
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                item.data.decode("utf-8")
            except UnicodeDecodeError:
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            found = _bad_utf8_field(item.data, field.message_type, f"{path}.", depth + 1)
            if found:
                return found
    return None


_LENGTH_DELIMITED = 2
