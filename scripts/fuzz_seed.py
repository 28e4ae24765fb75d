#!/usr/bin/env python3
"""Seeds the fuzz corpora (tests/fuzz/corpus) from the OpenAPI document and PROTOCOL.md's frames.

json_bodies: for every request body (guildhall::bodies::NAMES, the order the target's first byte
picks from), a minimal instance (required fields only) and a full one (every field), built from
its schema. ws_frame: one of each client frame. Files are named by content, so reseeding adds
only what is new; libFuzzer (scripts/fuzz) grows the corpus from these.

    scripts/fuzz_seed.py
"""
import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = json.loads((ROOT / "openapi/openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
NIL = "00000000-0000-0000-0000-000000000001"


def instance(schema, full, depth=0):
    if "$ref" in schema:
        return instance(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], full, depth + 1)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return instance(options[0], full, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        props = schema.get("properties", {})
        keep = props if full else {k: v for k, v in props.items() if k in schema.get("required", [])}
        return {k: instance(v, full, depth + 1) for k, v in keep.items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        item = schema.get("items", {})
        return [tag(instance(item, full, depth + 1), n) for n in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "uuid":
            return NIL
        if fmt == "date-time":
            return "2027-01-04T18:00:00Z"
        if fmt == "date":
            return "2027-01-04"
        return "seed" + "x" * max(schema.get("minLength", 1) - 4, 0)
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    return None


def tag(value, n):
    """The n-th of several items: distinct where the server asks for distinct items."""
    if isinstance(value, str) and n:
        return value[:-12] + f"{n:012d}" if value == NIL else f"{value}{n}"
    return value


def write(directory, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main(names):
    bodies = ROOT / "tests/fuzz/corpus/json_bodies"
    for index, name in enumerate(names):
        schema = SCHEMAS.get(name, {"type": "object"})
        if name == "media_callback":
            samples = [{"attachment_id": NIL, "status": "failed", "reason": "seed", "variants": []},
                       {"attachment_id": NIL, "status": "ready", "content_type": "image/png",
                        "size": 1, "width": 1, "height": 1, "blurhash": "LEHV6n",
                        "variants": [{"name": "thumb", "key": "k", "content_type": "image/webp",
                                      "width": 1, "height": 1, "size": 1}]}]
        else:
            samples = [instance(schema, False), instance(schema, True)]
        for sample in samples:
            write(bodies, bytes([index]) + json.dumps(sample).encode())
    frames = ROOT / "tests/fuzz/corpus/ws_frame"
    room = NIL
    for frame in [
        {"type": "subscribe", "room_ids": [room]},
        {"type": "unsubscribe", "room_ids": [room]},
        {"type": "send", "room_id": room, "client_msg_id": "c-1", "content": "hello"},
        {"type": "send", "room_id": room, "client_msg_id": "c-2", "content": "re",
         "reply_to": room, "attachment_ids": [room]},
        {"type": "typing", "room_id": room},
        {"type": "read", "room_id": room, "seq": 42},
        {"type": "resume", "positions": {room: 7}},
        {"type": "heartbeat"},
        {"type": "nope"},
        {"room_ids": []},
    ]:
        write(frames, json.dumps(frame).encode())


def body_names():
    """guildhall::bodies::NAMES, in order: the macro's entries, then the media callback."""
    source = (ROOT / "src/bodies.rs").read_text()
    listed = source.split("json_bodies! {", 1)[1].split("\n}", 1)[0]
    return re.findall(r'^\s*"(\w+)" =>', listed, re.M) + ["media_callback"]


if __name__ == "__main__":
    main(body_names())
