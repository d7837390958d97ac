"""Schemathesis hooks for ocp-metrics (loaded through SCHEMATHESIS_HOOKS by run.sh)."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """Sends an NDJSON body: the document describes it as a string (one event per line), which
    goes out as it is; a generated non-string (negative cases) goes out as one JSON value per
    line."""
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8")}
    items = value if isinstance(value, list) else [value]
    return {"data": "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")}
