"""REST scenario through the generated Python client (scripts/sdk generates `guildhall_client`
from openapi/openapi.json and runs this against a live server).

    GUILDHALL_URL=http://127.0.0.1:8080 PYTHONPATH=<generated> python tests/sdk/python/scenario.py

Two users; the first creates a public community and a room, the second joins; both send; the
history is paged backwards two at a time and must give every message once, in seq order, with
its content and sender; errors come back as problem+json. Exits non-zero on any mismatch.
"""

import os
import secrets
import sys
import uuid

from guildhall_client import AuthenticatedClient, Client
from guildhall_client.api.auth import register
from guildhall_client.api.communities import create_community, create_room, join_community
from guildhall_client.api.messages import list_messages, send_message
from guildhall_client.api.users import get_me
from guildhall_client.models import (
    AuthSession,
    CommunityView,
    CreateCommunity,
    CreateRoom,
    HistoryPage,
    MessageView,
    Problem,
    RegisterRequest,
    RoomView,
    SendRequest,
    UserView,
    Visibility,
)
from guildhall_client.types import UNSET

BASE = os.environ.get("GUILDHALL_URL", "http://127.0.0.1:8080")
RUN = secrets.token_hex(4)


def check(condition: bool, what: str) -> None:
    if not condition:
        print(f"python scenario: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def expect(value, kind, what: str):
    """The parsed body, which must be `kind` (the client parses errors into Problem)."""
    check(isinstance(value, kind), f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def signed_in(name: str) -> tuple[AuthSession, AuthenticatedClient]:
    body = RegisterRequest(username=f"py_{name}_{RUN}", password="correct horse battery staple")
    session = expect(register.sync(client=Client(base_url=BASE), body=body), AuthSession, "register")
    client = AuthenticatedClient(base_url=BASE, token=session.access_token)
    me = expect(get_me.sync(client=client), UserView, "get_me")
    check(me.id == session.user.id and me.username == body.username, f"get_me is {me!r}")
    return session, client


alice, alice_api = signed_in("alice")
bob, bob_api = signed_in("bob")

community = expect(
    create_community.sync(
        client=alice_api,
        body=CreateCommunity(name=f"SDK {RUN}", visibility=Visibility.PUBLIC),
    ),
    CommunityView,
    "create_community",
)
room = expect(
    create_room.sync(community.id, client=alice_api, body=CreateRoom(name="general")),
    RoomView,
    "create_room",
)
joined = expect(join_community.sync(community.id, client=bob_api), CommunityView, "join_community")
check(joined.id == community.id, "join_community answers the community")

# Alternating senders; each message has an idempotency key.
senders = [(alice, alice_api), (bob, bob_api)]
sent: list[MessageView] = []
for i in range(1, 6):
    who, api = senders[i % 2]
    body = SendRequest(content=f"hello {i} from python", client_msg_id=f"py-{RUN}-{i}")
    message = expect(send_message.sync(room.id, client=api, body=body), MessageView, "send_message")
    check(message.room_id == room.id and message.sender_id == who.user.id, f"sent {message!r}")
    check(message.content == body.content and message.attachments == [], f"sent {message!r}")
    sent.append(message)
check([m.seq for m in sent] == [1, 2, 3, 4, 5], f"seqs {[m.seq for m in sent]}")

# The same key again is the same message, not a sixth one.
again = send_message.sync(
    room.id, client=bob_api, body=SendRequest(content="hello 1 from python", client_msg_id=f"py-{RUN}-1")
)
check(isinstance(again, MessageView) and again.id == sent[0].id, f"idempotent send gave {again!r}")

# Newest page first, then `before` the lowest seq seen, two at a time.
pages: list[list[int]] = []
before = UNSET
while True:
    page = expect(
        list_messages.sync(room.id, client=bob_api, limit=2, before=before), HistoryPage, "list_messages"
    )
    seqs = [m.seq for m in page.messages]
    check(seqs == sorted(seqs), f"a page is in seq order: {seqs}")
    pages.append(seqs)
    for m in page.messages:
        original = sent[m.seq - 1]
        check(
            (m.id, m.content, m.sender_id) == (original.id, original.content, original.sender_id),
            f"history message {m.seq}",
        )
    if not page.has_more:
        break
    check(len(seqs) == 2 and len(pages) < 5, f"a full page before the last: {pages}")
    before = seqs[0]
check(pages == [[4, 5], [2, 3], [1]], f"pages {pages}")

# Errors are problem+json, parsed into Problem by the client.
missing = list_messages.sync_detailed(uuid.uuid4(), client=alice_api)
check(missing.status_code == 404, f"unknown room: status {missing.status_code}")
check(
    missing.headers.get("content-type", "").startswith("application/problem+json"),
    f"unknown room: content type {missing.headers.get('content-type')}",
)
problem = expect(missing.parsed, Problem, "unknown room")
check(problem.status == 404 and problem.code == "not_found", f"unknown room: {problem!r}")

blank = send_message.sync_detailed(room.id, client=alice_api, body=SendRequest(content="   "))
problem = expect(blank.parsed, Problem, "blank message")
check(blank.status_code == 422 and problem.code == "validation_failed", f"blank message: {problem!r}")
fields = [e.field for e in problem.errors] if problem.errors else []
check(fields == ["content"], f"blank message: fields {fields}")

print(f"python scenario: ok ({len(sent)} messages, pages {pages}, problem+json 404 and 422)")
