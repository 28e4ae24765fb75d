"""Schemathesis hooks of scripts/schemathesis (SCHEMATHESIS_HOOKS; GH_ST_RUN names the run).

main: communities are made private. object_level_authorization checks that one peer never
reads another's objects, but any signed-in user may read a public community and everything
in it (README, Permissions): the check cannot tell that from a leak. Rewriting `public` to
`private` in community bodies (every phase, which configured body parameters do not reach)
makes every cross-peer read it finds a real one. Public communities have their own tests.

cross-user: every operation is sent as one user with every path id pinned to another user's
private community (its group, room, message, poll, survey, event, role, feed token). Whatever
the body, the answer must not show that those objects exist: Guildhall answers 404 for what
the caller may not see. Refusals made before any lookup (400 malformed, 415, 422 for a bad
body) reveal nothing and pass; a success, a redirect, 403 (exists, not allowed) or 409
(exists, conflicting state) is a cross-user leak.
"""

from __future__ import annotations

import os

import schemathesis

RUN = os.environ.get("GH_ST_RUN", "")
COMMUNITY_WRITES = {("POST", "/v1/communities"), ("PATCH", "/v1/communities/{community_id}")}
LEAKING = {403, 409}

if RUN == "main":

    @schemathesis.hook
    def before_call(ctx, case, **kwargs):
        if (case.method.upper(), case.path) in COMMUNITY_WRITES and isinstance(case.body, dict):
            if case.body.get("visibility") == "public":
                case.body["visibility"] = "private"


if RUN == "cross-user":

    @schemathesis.check
    def foreign_object_is_not_found(ctx, response, case):
        status = response.status_code
        if status < 400 or status in LEAKING:
            raise AssertionError(
                f"{case.method} {case.formatted_path} as another user answered {status}: "
                "an object of someone else's private community must be 404"
            )
