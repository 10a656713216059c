"""OpenAPI 3.1 for the public REST API, generated from the descriptor set (``make proto`` writes ``gen/openapi.json``
and its reference page ``gen/openapi.html``; the edge serves them at ``/openapi.json`` and ``/docs``).

Everything is derived, nothing is written by hand: the operations are the edge's routes (``tix_dev.edge.http_routes``:
the ``google.api.http`` annotations, admin services excluded), path and query parameters and bodies follow the
transcoder's rules (path variables bind fields, a GET's other fields are query parameters in lowerCamelCase, ``body:
"*"`` takes the rest as JSON), schemas follow the proto3 JSON mapping the edge prints (int64 as strings, enums as
names, Timestamps as RFC 3339), descriptions are the proto comments, and security follows the route's class (reads:
token optional; fans: bearer token, streams also a stream token; webhooks: the sender's signature). Every error is
the JSON ``google.rpc.Status`` the services and the edge answer with.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from tix_dev.edge import (
    LOCAL_REPLIES,
    RETRY_AFTER_SECONDS,
    HttpRoute,
    RouteClass,
    http_routes,
    service_full_names,
)
from tix_dev.settings import DESCRIPTOR_PATH

FieldProto = descriptor_pb2.FieldDescriptorProto
_STATUS_REF = {"$ref": "#/components/schemas/google.rpc.Status"}
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    FieldProto.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    FieldProto.TYPE_INT64: _INT64,
    FieldProto.TYPE_SINT64: _INT64,
    FieldProto.TYPE_SFIXED64: _INT64,
    FieldProto.TYPE_UINT64: _UINT64,
    FieldProto.TYPE_FIXED64: _UINT64,
    FieldProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
# Well-known types have JSON forms of their own (the proto3 JSON mapping).
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    ".google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    ".google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "required": ["@type"]},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
}


class _Descriptors:
    """Messages and enums of the descriptor set by full name, with their source comments."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        self.methods: dict[str, descriptor_pb2.MethodDescriptorProto] = {}
        for file in files.file:
            locations = {tuple(loc.path): loc for loc in file.source_code_info.location}
            for index, service in enumerate(file.service):
                for method_index, method in enumerate(service.method):
                    self.methods[f"{file.package}.{service.name}.{method.name}"] = method
                    self._comment(locations, (6, index, 2, method_index), f".{file.package}.{service.name}.{method.name}")
            for index, message in enumerate(file.message_type):
                self._add_message(file.package, message, (4, index), locations)
            for index, enum in enumerate(file.enum_type):
                self.enums[f".{file.package}.{enum.name}"] = enum
                self._comment(locations, (5, index), f".{file.package}.{enum.name}")

    def _add_message(
        self, scope: str, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], locations: Mapping
    ) -> None:
        name = f"{scope}.{message.name}" if scope else message.name
        full = f".{name}"
        self.messages[full] = message
        self._comment(locations, path, full)
        for index, field in enumerate(message.field):
            self._comment(locations, (*path, 2, index), f"{full}.{field.name}")
        for index, nested in enumerate(message.nested_type):
            self._add_message(name, nested, (*path, 3, index), locations)
        for enum in message.enum_type:
            self.enums[f"{full}.{enum.name}"] = enum

    def _comment(self, locations: Mapping, path: tuple[int, ...], key: str) -> None:
        location = locations.get(path)
        if location is not None and location.leading_comments.strip():
            self.comments[key] = " ".join(location.leading_comments.split())


class OpenApiBuilder:
    def __init__(self, descriptor_path: Path = DESCRIPTOR_PATH) -> None:
        self._types = _Descriptors(descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes()))
        self._routes = http_routes(descriptor_path)
        self._full_names = service_full_names(descriptor_path)
        self._schemas: dict[str, Any] = {}

    # -- schemas ---------------------------------------------------------------------------------------------------

    def _ref(self, type_name: str) -> dict[str, Any]:
        if type_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[type_name])
        key = type_name.lstrip(".")
        if key not in self._schemas:
            self._schemas[key] = {}  # a placeholder first: messages may refer to themselves
            if type_name in self._types.enums:
                enum = self._types.enums[type_name]
                self._schemas[key] = {"type": "string", "enum": [value.name for value in enum.value]}
            else:
                self._schemas[key] = self._message_schema(type_name, output=True)
            if type_name in self._types.comments:
                self._schemas[key]["description"] = self._types.comments[type_name]
        return {"$ref": f"#/components/schemas/{key}"}

    def _field_schema(self, owner: str, field: FieldProto) -> dict[str, Any]:
        if field.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_ENUM):
            entry = self._types.messages.get(field.type_name)
            if entry is not None and entry.options.map_entry:
                value = next(f for f in entry.field if f.name == "value")
                return {"type": "object", "additionalProperties": self._field_schema(field.type_name, value)}
            schema = self._ref(field.type_name)
        else:
            schema = dict(_SCALARS[field.type])
        if field.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": schema}
        comment = self._types.comments.get(f"{owner}.{field.name}")
        if comment:
            schema = {**schema, "description": comment} if "$ref" not in schema else {"allOf": [schema], "description": comment}
        if _behaviors(field) & {field_behavior_pb2.OUTPUT_ONLY}:
            schema = {**schema, "readOnly": True}
        return schema

    def _message_schema(self, type_name: str, *, output: bool, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        message = self._types.messages[type_name]
        properties = {}
        required = []
        for field in message.field:
            if field.name in skip:
                continue
            behaviors = _behaviors(field)
            if not output and field_behavior_pb2.OUTPUT_ONLY in behaviors:
                continue
            properties[field.json_name] = self._field_schema(type_name, field)
            if not output and field_behavior_pb2.REQUIRED in behaviors:
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if not output:
            # The transcoder refuses fields a request does not have.
            schema["additionalProperties"] = False
        return schema

    # -- operations --------------------------------------------------------------------------------------------------

    def _query_parameters(self, type_name: str, prefix: str, skip: frozenset[str]) -> Iterator[dict[str, Any]]:
        """A GET's request fields outside the path, as the transcoder reads them (nested fields dotted)."""
        for field in self._types.messages[type_name].field:
            if field.name in skip or field_behavior_pb2.OUTPUT_ONLY in _behaviors(field):
                continue
            name = f"{prefix}{field.json_name}"
            if field.type == FieldProto.TYPE_MESSAGE and field.type_name not in _WELL_KNOWN:
                yield from self._query_parameters(field.type_name, f"{name}.", frozenset())
                continue
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": field_behavior_pb2.REQUIRED in _behaviors(field),
                "schema": self._field_schema(type_name, field),
            }
            if field.label == FieldProto.LABEL_REPEATED:
                parameter["explode"] = True
            yield parameter

    def _operation(self, route: HttpRoute) -> dict[str, Any]:
        method = self._types.methods[route.name]
        path_fields = frozenset(_path_variables(route.path))
        kind = route.route_class(self._full_names)
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in _path_variables(route.path)
        ]
        operation: dict[str, Any] = {
            "operationId": f"{route.service.rsplit('.', 1)[-1]}_{route.method}",
            "tags": [route.service.rsplit(".", 1)[-1]],
            "summary": route.method,
        }
        comment = self._types.comments.get(f".{route.service}.{route.method}")
        if comment:
            operation["description"] = comment
        if kind is RouteClass.WEBHOOK:
            parameters.append(
                {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"},
                 "description": "The sender's signature of the raw body; the service verifies it."}
            )
            operation["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": {"type": "object"}}}
            }
        elif route.verb == "GET":
            parameters.extend(self._query_parameters(method.input_type, "", path_fields))
        else:
            body = self._message_schema(method.input_type, output=False, skip=path_fields)
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if parameters:
            operation["parameters"] = parameters
        response = self._ref(method.output_type)
        if route.server_streaming:
            operation["x-tix-streaming"] = True
            content = {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "description": "With Accept: text/event-stream, one `data: {json}` frame per message.",
                },
                "application/json": {"schema": response, "description": "Otherwise one JSON object per line."},
            }
            ok = {"description": "A stream of messages, open until the client leaves.", "content": content}
        else:
            ok = {"description": "OK", "content": {"application/json": {"schema": response}}}
        operation["responses"] = {"200": ok, **_error_responses(kind)}
        operation["security"] = _security(kind, route.server_streaming)
        return operation

    def build(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for route in self._routes:
            paths.setdefault(route.path, {})[route.verb.lower()] = self._operation(route)
        self._schemas["google.rpc.Status"] = _STATUS_SCHEMA
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Tix API",
                "version": "v1",
                "description": (
                    "Events, search, the waiting room and bookings, as REST/JSON through the Envoy edge (the "
                    "proto3 JSON mapping of the tix.v1 gRPC contracts). Errors are google.rpc.Status objects whose "
                    "details carry an ErrorInfo reason (domain tix.dev), a BadRequest for invalid fields and a "
                    "RetryInfo when a rate limit answered. Generated from the descriptor set; do not edit."
                ),
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "servers": [{"url": "/", "description": "the edge this document was served by"}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(self._schemas.items())),
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description": "A fan's token (RS256, issuer https://auth.tix.dev, audience tix, exp required).",
                    },
                    "streamToken": {
                        "type": "apiKey", "in": "query", "name": "access_token",
                        "description": "A stream token from POST /v1/streamTokens, for EventSource on :watch routes.",
                    },
                },
            },
        }


_STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: every error of the API, from a service or from the edge itself.",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "google.rpc.Code"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "required": ["@type"],
                "description": "ErrorInfo (reason, domain tix.dev, metadata), BadRequest (fieldViolations), RetryInfo.",
            },
        },
    },
    "required": ["code", "message"],
}


def _behaviors(field: FieldProto) -> set[int]:
    return set(field.options.Extensions[field_behavior_pb2.field_behavior])


def _path_variables(template: str) -> list[str]:
    return [name.split("=")[0] for name in re.findall(r"\{([^}]+)\}", template)]


def _security(kind: RouteClass, streaming: bool) -> list[dict[str, list[str]]]:
    if kind is RouteClass.READ:
        return [{}, {"bearerAuth": []}]
    if kind is RouteClass.WEBHOOK:
        return [{}]
    return [{"bearerAuth": []}, {"streamToken": []}] if streaming else [{"bearerAuth": []}]


def _error_responses(kind: RouteClass) -> dict[str, Any]:
    by_status = {reply.status: reply for reply in LOCAL_REPLIES}
    statuses = [400, 404, 413, 414, 429, 431, 503]
    if kind is not RouteClass.WEBHOOK:
        statuses.insert(1, 401)
    responses: dict[str, Any] = {}
    for status in statuses:
        reply = by_status[status]
        entry: dict[str, Any] = {
            "description": f"{reply.reason}: {reply.message}",
            "content": {"application/json": {"schema": _STATUS_REF}},
        }
        if reply.retry:
            entry["headers"] = {
                "Retry-After": {"schema": {"type": "integer", "const": RETRY_AFTER_SECONDS}, "description": "seconds"}
            }
        responses[str(status)] = entry
    responses["default"] = {
        "description": "Any other error, mapped from its gRPC code.",
        "content": {"application/json": {"schema": _STATUS_REF}},
    }
    return responses


def render_reference(document: Mapping[str, Any]) -> str:
    """A readable, self-contained reference page: no script, no stylesheet or font from anywhere else."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(document['info']['title'])} reference</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "h2{border-bottom:1px solid #ddd;margin-top:2.5rem}h3{margin-bottom:.2rem}code,pre{font:13px ui-monospace,"
        "monospace;background:#f5f5f5;padding:.1rem .3rem;border-radius:3px}pre{padding:.6rem;overflow:auto}"
        ".verb{display:inline-block;min-width:3.5rem;font-weight:700}.GET{color:#1a7f37}.POST{color:#0550ae}"
        "table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border:1px solid #e3e3e3;padding:.25rem"
        " .5rem;text-align:left;vertical-align:top}th{background:#fafafa}</style></head><body>",
        f"<h1>{html.escape(document['info']['title'])} <small>{html.escape(document['info']['version'])}</small></h1>",
        f"<p>{html.escape(document['info']['description'])}</p>",
        "<p>The machine-readable document is <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>",
        "<h2>Operations</h2>",
    ]
    schemes = document["components"]["securitySchemes"]
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            parts.append(
                f"<h3 id='{html.escape(operation['operationId'])}'><span class='verb {verb.upper()}'>"
                f"{verb.upper()}</span> <code>{html.escape(path)}</code></h3>"
            )
            if operation.get("description"):
                parts.append(f"<p>{html.escape(operation['description'])}</p>")
            auth = [" + ".join(requirement) or "none" for requirement in operation["security"]]
            parts.append(
                "<p><b>Authentication:</b> " + " or ".join(html.escape(a) for a in auth)
                + (" &middot; <b>streams</b> (EventSource: Accept: text/event-stream)" if operation.get("x-tix-streaming") else "")
                + "</p>"
            )
            parameters = operation.get("parameters", [])
            if parameters:
                rows = "".join(
                    f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                    f"<td>{'yes' if p.get('required') else ''}</td><td>{html.escape(_type_of(p['schema']))}</td></tr>"
                    for p in parameters
                )
                parts.append(f"<table><tr><th>parameter</th><th>in</th><th>required</th><th>type</th></tr>{rows}</table>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                parts.append(f"<p><b>Body:</b> {_properties_table(body)}</p>")
            ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
            parts.append(f"<p><b>Answer:</b> {html.escape(_type_of(ok))}</p>")
            errors = ", ".join(code for code in operation["responses"] if code not in ("200", "default"))
            parts.append(f"<p><b>Errors</b> (<a href='#status'>Status</a>): {errors}</p>")
    parts.append("<h2>Authentication</h2>")
    for name, scheme in schemes.items():
        parts.append(f"<p><code>{name}</code>: {html.escape(scheme['description'])}</p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        anchor = "status" if name == "google.rpc.Status" else name
        parts.append(f"<h3 id='{html.escape(anchor)}'>{html.escape(name)}</h3>")
        if schema.get("description"):
            parts.append(f"<p>{html.escape(schema['description'])}</p>")
        if "enum" in schema:
            parts.append("<p>" + ", ".join(f"<code>{html.escape(v)}</code>" for v in schema["enum"]) + "</p>")
        elif schema.get("properties"):
            parts.append(_properties_table(schema))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _type_of(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "allOf" in schema:
        return _type_of(schema["allOf"][0])
    if schema.get("type") == "array":
        return f"list of {_type_of(schema['items'])}"
    kind = schema.get("type", "any")
    detail = schema.get("format") or ("one of " + ", ".join(schema["enum"]) if "enum" in schema else "")
    return f"{kind} ({detail})" if detail else str(kind)


def _properties_table(schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_type_of(prop))}</td>"
        f"<td>{'yes' if name in required else ''}</td><td>{html.escape(prop.get('description', ''))}</td></tr>"
        for name, prop in schema.get("properties", {}).items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>{rows}</table>"


def write(document_path: Path, reference_path: Path, descriptor_path: Path = DESCRIPTOR_PATH) -> dict[str, Any]:
    document = OpenApiBuilder(descriptor_path).build()
    document_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    reference_path.write_text(render_reference(document))
    return document


if __name__ == "__main__":
    # make proto: python -m tix_dev.openapi gen/openapi.json gen/openapi.html
    write(Path(sys.argv[1]), Path(sys.argv[2]))
