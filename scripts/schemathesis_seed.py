#!/usr/bin/env python3
"""Arrange the data scripts/schemathesis tests against (Python standard library only).

    schemathesis_seed.py BASE_URL OUT_DIR

Registers alice, bob and carol (a random suffix keeps usernames unique), and as each one creates a private
community holding a group, a room, a message with a reaction, a poll, a survey, an event, an
invite, a custom role and a calendar feed token, so every kind of path id exists and is owned by
exactly one user. Writes into OUT_DIR:

  auth.json   Web Fuzzing Commons auth document, one bearer token per user (schemathesis peers)
  seed.env    GH_ST_* variables that scripts/schemathesis.toml and schemathesis-foreign.toml
              read: the auth file, the first user's token, the second user's object ids
              (pinned in the cross-user run), valid cursors and an occurrence window
  seed.json   what was created, by user

Before writing, it checks the arrangement itself: each owner reads its own objects (200), and the
first user gets 404 for the second user's community, room and message (the cross-user run then
repeats that over every operation).
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

PASSWORD = "schemathesis-password-1"


def call(base: str, method: str, path: str, token: str | None = None, body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def expect(status: int, want: int, what: str, body: object) -> None:
    if status != want:
        sys.exit(f"seed: {what}: expected {want}, got {status}: {body}")


def post(base: str, path: str, token: str, body: object, what: str, want: int = 201) -> dict:
    status, answer = call(base, "POST", path, token, body)
    expect(status, want, what, answer)
    assert isinstance(answer, dict)
    return answer


def seed_user(base: str, name: str) -> dict:
    username = f"{name}_{secrets.token_hex(3)}"
    status, session = call(base, "POST", "/v1/auth/register", body={"username": username, "password": PASSWORD})
    expect(status, 201, f"register {username}", session)
    assert isinstance(session, dict)
    token = session["access_token"]
    user_id = session["user"]["id"]

    community = post(base, "/v1/communities", token, {"name": f"{name}'s private", "visibility": "private"}, "community")
    cid = community["id"]
    group = post(base, f"/v1/communities/{cid}/groups", token, {"name": "projects"}, "group")
    room = post(base, f"/v1/communities/{cid}/rooms", token, {"name": "general", "group_id": group["id"]}, "room")
    rid = room["id"]
    message = post(base, f"/v1/rooms/{rid}/messages", token, {"content": f"hello from {name}"}, "message")
    status, answer = call(base, "PUT", f"/v1/rooms/{rid}/messages/{message['id']}/reactions/%F0%9F%91%8D", token)
    expect(status, 204, "reaction", answer)
    poll = post(base, f"/v1/rooms/{rid}/polls", token, {"question": "lunch?", "options": ["yes", "no"]}, "poll")
    survey = post(
        base,
        f"/v1/rooms/{rid}/surveys",
        token,
        {"title": "how was it?", "questions": [{"kind": "rating", "prompt": "rate it"}]},
        "survey",
    )
    start = (datetime.now(timezone.utc) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    event = post(
        base,
        f"/v1/communities/{cid}/events",
        token,
        {
            "title": "weekly sync",
            "starts_at": start.isoformat().replace("+00:00", "Z"),
            "ends_at": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "timezone": "UTC",
            "rrule": "FREQ=WEEKLY;COUNT=4",
            "room_id": rid,
        },
        "event",
    )
    invite = post(base, f"/v1/communities/{cid}/invites", token, {"max_uses": 5}, "invite")
    role = post(base, f"/v1/communities/{cid}/roles", token, {"name": "helper", "permissions": ["view"]}, "role")
    feed = post(base, "/v1/calendar/feed-tokens", token, None, "feed token")

    for path in (f"/v1/communities/{cid}", f"/v1/rooms/{rid}", f"/v1/groups/{group['id']}", f"/v1/polls/{poll['id']}"):
        status, answer = call(base, "GET", path, token)
        expect(status, 200, f"{name} reads its own {path}", answer)

    return {
        "name": name,
        "username": username,
        "user_id": user_id,
        "token": token,
        "refresh_token": session["refresh_token"],
        "community_id": cid,
        "group_id": group["id"],
        "room_id": rid,
        "message_id": message["id"],
        "poll_id": poll["id"],
        "survey_id": survey["id"],
        "event_id": event["id"],
        "original_start": event["starts_at"],
        "invite_code": invite["code"],
        "role_id": role["id"],
        "feed_token_id": feed["id"],
        "feed_token": feed["token"],
    }


def main() -> None:
    base, out = sys.argv[1].rstrip("/"), Path(sys.argv[2])
    # The names are the peers of scripts/schemathesis.toml; alice attacks bob in the cross-user run.
    users = [seed_user(base, name) for name in ("alice", "bob", "carol")]
    attacker, victim = users[0], users[1]

    # The arrangement itself: the victim's private objects are invisible to the attacker.
    for path in (
        f"/v1/communities/{victim['community_id']}",
        f"/v1/rooms/{victim['room_id']}",
        f"/v1/rooms/{victim['room_id']}/messages",
    ):
        status, answer = call(base, "GET", path, attacker["token"])
        expect(status, 404, f"{attacker['name']} reads {victim['name']}'s {path}", answer)

    out.mkdir(parents=True, exist_ok=True)
    (out / "seed.json").write_text(json.dumps(users, indent=2) + "\n")
    auth = {
        "schemaVersion": "1.0",
        "auth": [
            {"name": u["name"], "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {u['token']}"}]}
            for u in users
        ],
    }
    (out / "auth.json").write_text(json.dumps(auth, indent=2) + "\n")

    # Cursors as the server issues them (base64url of the sort key): see scripts/schemathesis.toml.
    def cursor(key: str) -> str:
        return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")

    now = datetime.now(timezone.utc).replace(microsecond=0)
    env = {
        "GH_ST_AUTH_FILE": str(out / "auth.json"),
        "GH_ST_ATTACKER_TOKEN": attacker["token"],
        "GH_ST_CURSOR_UUID": cursor(victim["user_id"]),
        "GH_ST_CURSOR_SEQ": cursor("9223372036854775807"),
        "GH_ST_CURSOR_VOTER": cursor(f"{now.isoformat(timespec='microseconds').replace('+00:00', 'Z')}|{victim['user_id']}|{victim['user_id']}"),
        "GH_ST_WINDOW_FROM": now.isoformat().replace("+00:00", "Z"),
        "GH_ST_WINDOW_TO": (now + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
    }
    for key in ("community_id", "group_id", "room_id", "message_id", "poll_id", "survey_id", "event_id",
                "original_start", "role_id", "user_id"):
        env[f"GH_ST_VICTIM_{key.upper()}"] = victim[key]
    env["GH_ST_VICTIM_TOKEN_ID"] = victim["feed_token_id"]
    (out / "seed.env").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    print(
        f"seed: {len(users)} users ({', '.join(u['username'] for u in users)}), "
        f"each with a private community; {attacker['name']} attacks {victim['name']}'s"
    )


if __name__ == "__main__":
    main()
