#!/usr/bin/env python3
"""Reference expansion of recurring event series, for tests/api/rrule_oracle.rs.

    python3 scripts/rrule_oracle.py CASES.json  ->  {"results": [{"starts": [...], "truncated": b}]}

Each case is a series as src/calendar/expand.rs sees it (start, duration, IANA zone, RRULE value,
RDATEs, EXDATEs as UTC instants) plus a window [from, to) and a limit. The rule is expanded by
python-dateutil with the zone from zoneinfo; what is ours, not dateutil's, is kept small and
written out here so the Rust side is checked against it, not against itself:

- DST: dateutil builds local times with fold=0, and zoneinfo gives a fold=0 time in a gap the
  offset before the gap and an ambiguous one its first offset: RFC 5545 §3.3.5, unchanged.
- DTSTART is always the first occurrence and counts towards COUNT (RFC 5545 §3.3.10); dateutil
  skips a DTSTART the rule does not produce, so then only COUNT-1 rule instances are taken.
- RDATE/EXDATE are applied to UTC instants here, not with rruleset: an aware datetime in a fold
  never compares equal to one of another zone (PEP 495), so rruleset would miss such EXDATEs.

Exit status 3 (and a message) when python-dateutil is missing: scripts/test installs it.
"""

import bisect
import itertools
import json
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

try:
    from dateutil.rrule import rrulestr
except ImportError:
    print("python-dateutil is not installed; run scripts/test, which installs it", file=sys.stderr)
    sys.exit(3)

# A local wall-clock time and its instant differ by at most 26 h; see MARGIN in expand.rs.
MARGIN = timedelta(days=2)
MAX_SCANNED = 500_000


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def utc_text(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def count_of(rule):
    for part in rule.split(";"):
        key, _, value = part.partition("=")
        if key.upper() == "COUNT":
            return int(value)
    return None


def expand(case):
    zone = ZoneInfo(case["timezone"])
    start = instant(case["starts_at"])
    duration = timedelta(seconds=case["duration_s"])
    lo, hi, limit = instant(case["from"]), instant(case["to"]), case["limit"]
    exdates = {instant(x) for x in case["exdates"]}
    found = []  # the smallest limit+1 starts, sorted

    def add(s):
        if s < hi and (s >= lo or s + duration > lo) and s not in exdates:
            i = bisect.bisect_left(found, s)
            if i == len(found) or found[i] != s:
                found.insert(i, s)
                del found[limit + 1 :]

    add(start)
    for rdate in case["rdates"]:
        add(instant(rdate))
    rule = case["rrule"]
    if rule:
        dtstart = start.astimezone(zone).replace(microsecond=0)
        local_start = dtstart.replace(tzinfo=None)
        instances = iter(rrulestr(rule, dtstart=dtstart))
        first = next(instances, None)
        in_sync = first is not None and first.replace(tzinfo=None) == local_start
        instances = itertools.chain([first] if first is not None else [], instances)
        count = count_of(rule)
        if count is not None and not in_sync:
            instances = itertools.islice(instances, count - 1)
        end = (hi + MARGIN).replace(tzinfo=None)
        for scanned, dt in enumerate(instances):
            if scanned > MAX_SCANNED:
                raise RuntimeError(f"case {case['id']}: more than {MAX_SCANNED} instances")
            local = dt.replace(tzinfo=None)
            if local > end:
                break
            if len(found) > limit and local > (found[-1] + MARGIN).replace(tzinfo=None):
                break
            if local == local_start:
                continue  # DTSTART, added above
            s = dt.astimezone(timezone.utc)
            if s >= start:
                add(s)
    return {"starts": [utc_text(s) for s in found[:limit]], "truncated": len(found) > limit}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    json.dump({"results": [expand(case) for case in cases]}, sys.stdout)


if __name__ == "__main__":
    main()
