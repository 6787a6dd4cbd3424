"""The console API's error answers in the OpenAPI schema, documented once for every operation.

Views document the answers particular to them (409 LINK-1, 422 naming rules, 503); the
postprocessing hook adds, to every operation, the ones any of them can give: 400 (malformed
input or query parameters), 401 (no token), 404 (unknown object in the path), and, where there
is a body, 413 (too large), 415 (not JSON) and 422 (a rule, SEC-1 at least, refuses it). Every 4xx/5xx answer gets the ``Error`` schema.
A client generated from the schema, or a fuzzer driven by it, then meets no undocumented status.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiResponse

ERROR_COMPONENT = "Error"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
_METHODS = {"get", "put", "post", "patch", "delete"}

COMMON_ERRORS = {
    400: "Malformed input or an unknown or invalid query parameter; `fields` names what is at fault.",
    401: "Missing or invalid token.",
}
PATH_ERRORS = {404: "Unknown object."}
BODY_ERRORS = {
    422: "A rule refuses the request: `rule` names it (SEC-1: a card number typed into a free-text field).",
    413: "The body is larger than the server accepts.",
    415: "The body is not sent as a supported media type (application/json).",
}


def error_responses(descriptions: Mapping[int, str], *codes: int) -> dict[int, OpenApiResponse]:
    """``extend_schema(responses=...)`` entries for the errors particular to one operation.

    ``descriptions`` are a module's texts per status; ``codes`` picks the operation's own
    (all of them when none is given): ``**error_responses(ERROR_TEXT, 404, 422)``.
    """
    chosen = codes or tuple(descriptions)
    return {code: OpenApiResponse(description=descriptions[code]) for code in chosen}


def document_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: the common error answers on every operation."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            errors = dict(COMMON_ERRORS)
            if "{" in path:
                errors.update(PATH_ERRORS)
            if "requestBody" in operation:
                errors.update(BODY_ERRORS)
            for parameter in operation.get("parameters", []):
                # The views refuse an empty query value (400: give it a value or leave it out).
                if parameter.get("in") == "query" and parameter.get("schema", {}).get("type") == "string":
                    parameter["schema"].setdefault("minLength", 1)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(str(code), {"description": description})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    return result


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer: `code`, `rule` (the RULES.md ID or null), `detail`; `fields` on a 400 and on a SEC-1 422.",
    "properties": {
        "code": {"type": "string"},
        "rule": {"type": "string", "nullable": True, "description": "The RULES.md ID, e.g. ELIG-2."},
        "detail": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {},
            "description": "400 and SEC-1 422: the messages per field (nested for nested fields).",
        },
    },
    "required": ["code", "detail", "rule"],
}
