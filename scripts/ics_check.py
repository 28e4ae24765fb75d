#!/usr/bin/env python3
"""Validate an iCalendar (RFC 5545) file with the independent `icalendar` parser.

    python3 scripts/ics_check.py FILE
    python3 scripts/ics_check.py FILE --expand FROM TO    (RFC 3339 instants)

Checks: CRLF line endings and lines of at most 75 octets; a VCALENDAR with VERSION 2.0 and
PRODID; every VEVENT has UID, DTSTAMP and DTSTART; every TZID used has a VTIMEZONE, and that
VTIMEZONE, read on its own (not looked up by name), gives the same UTC offset as the tz database
at every time the events name and over the range it covers.

Prints {"events": [...]} as JSON on stdout, one entry per VEVENT in file order: uid, summary,
description, location, tzid (of DTSTART, or null), dtstart, dtend, recurrence_id (UTC RFC 3339,
or null), rrule (the RRULE value as icalendar writes it back: part order may differ; or null),
rdates, exdates (UTC, sorted), sequence. With --expand, also "occurrences": the instances that
overlap [FROM, TO) as computed by `recurring_ical_events` (uid, summary, start, end,
recurrence_id, which it sets on every instance of a recurring event), sorted by start.

Exits 1 with a message on stderr when the file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:
    import icalendar
except ImportError:
    sys.exit("ics_check: the `icalendar` package is missing; run scripts/test (or pip install icalendar)")


class Invalid(Exception):
    pass


def utc(value) -> str:
    """A date-time as UTC RFC 3339 with a Z; a DATE as YYYY-MM-DD."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Invalid(f"floating (zone-less) date-time {value.isoformat()}")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    raise Invalid(f"not a date or date-time: {value!r}")


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def date_list(component, name):
    """Every value of a multi-valued date property (RDATE, EXDATE), however many lines."""
    out = []
    for prop in as_list(component.get(name)):
        for item in prop.dts:
            out.append(item.dt)
    return out


def check_lines(raw: bytes) -> None:
    if not raw.endswith(b"\r\n"):
        raise Invalid("the file does not end with CRLF")
    for number, line in enumerate(raw.split(b"\r\n")[:-1], start=1):
        if b"\n" in line or b"\r" in line:
            raise Invalid(f"line {number}: bare CR or LF (lines must end with CRLF)")
        if len(line) > 75:
            raise Invalid(f"line {number}: {len(line)} octets, more than 75 (not folded)")
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Invalid(f"line {number}: not UTF-8 (a fold split a character?): {e}") from e


def tzids_of(component) -> set[str]:
    """The TZID parameters of a component's own properties."""
    found = set()
    for _name, value in component.property_items(recursive=False, sorted=False):
        params = getattr(value, "params", None)
        if params and "TZID" in params:
            found.add(str(params["TZID"]))
    return found


def zoned_times(event):
    """(TZID, local date-time) for every date-time value an event writes with a TZID."""
    out = []
    for _name, value in event.property_items(recursive=False, sorted=False):
        params = getattr(value, "params", None)
        if not params or "TZID" not in params:
            continue
        items = value.dts if hasattr(value, "dts") else [value]
        for item in items:
            if isinstance(getattr(item, "dt", None), datetime):
                out.append((str(params["TZID"]), item.dt))
    return out


def onsets(vtz):
    """The UTC instants at which a VTIMEZONE's observances begin (DTSTART and RDATEs)."""
    out = []
    for sub in vtz.subcomponents:
        if sub.name not in ("STANDARD", "DAYLIGHT"):
            continue
        before = sub.decoded("TZOFFSETFROM")
        for local in [sub.decoded("DTSTART"), *date_list(sub, "RDATE")]:
            out.append(local.replace(tzinfo=timezone.utc) - before)
    if not out:
        raise Invalid(f"VTIMEZONE {vtz.get('TZID')} has no STANDARD or DAYLIGHT")
    return out


def hhmm(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02}{abs(minutes) % 60:02}"


def compare_with_database(tzid, own, database, first, last) -> None:
    """The VTIMEZONE and the tz database agree from `first` to `last`: sampled daily, and every
    15 minutes around each day on which the database changes offset."""
    day, step = timedelta(days=1), timedelta(minutes=15)

    def offsets(at):
        return at.astimezone(database).utcoffset(), at.astimezone(own).utcoffset()

    at = first
    while at <= last:
        expected, got = offsets(at)
        if expected != got:
            raise Invalid(
                f"VTIMEZONE {tzid} gives {hhmm(got)} at {at:%Y-%m-%dT%H:%M}Z, the tz database {hhmm(expected)}"
            )
        if offsets(at + day)[0] != expected:
            fine = at
            while fine < at + day:
                fine += step
                expected, got = offsets(fine)
                if expected != got:
                    raise Invalid(
                        f"VTIMEZONE {tzid} gives {hhmm(got)} at {fine:%Y-%m-%dT%H:%M}Z, "
                        f"the tz database {hhmm(expected)}"
                    )
        at += day


def check_vtimezones(calendar, events) -> None:
    zones = {str(tz["TZID"]): tz for tz in calendar.walk("VTIMEZONE")}
    compared = set()
    for event in events:
        for tzid in sorted(tzids_of(event)):
            if tzid not in zones:
                raise Invalid(f"VEVENT {event.get('UID')}: TZID {tzid} has no VTIMEZONE")
            # The VTIMEZONE itself, not the zone database entry of the same name.
            own = zones[tzid].to_tz(lookup_tzid=False)
            try:
                database = ZoneInfo(tzid)
            except (ZoneInfoNotFoundError, ValueError):
                continue  # a custom zone: its VTIMEZONE is all there is
            if tzid not in compared:
                compared.add(tzid)
                times = onsets(zones[tzid])
                compare_with_database(
                    tzid, own, database, min(times) - timedelta(days=1), max(times) + timedelta(days=1)
                )
            for zone, t in zoned_times(event):
                if zone != tzid:
                    continue
                wall = t.replace(tzinfo=None)
                expected = wall.replace(tzinfo=database, fold=t.fold).utcoffset()
                got = wall.replace(tzinfo=own, fold=t.fold).utcoffset()
                if expected != got:
                    raise Invalid(
                        f"VEVENT {event.get('UID')}: VTIMEZONE {tzid} gives {hhmm(got)} at {wall}, "
                        f"the tz database {hhmm(expected)}"
                    )


def summarize(event) -> dict:
    start = event.decoded("DTSTART")
    start_prop = event["DTSTART"]
    rrules = as_list(event.get("RRULE"))
    if len(rrules) > 1:
        raise Invalid(f"VEVENT {event['UID']} has {len(rrules)} RRULEs")
    return {
        "uid": str(event["UID"]),
        "summary": str(event.get("SUMMARY", "")),
        "description": str(event.get("DESCRIPTION", "")),
        "location": str(event.get("LOCATION", "")),
        "tzid": str(start_prop.params["TZID"]) if "TZID" in start_prop.params else None,
        "dtstart": utc(start),
        "dtend": utc(event.decoded("DTEND")) if "DTEND" in event else None,
        "recurrence_id": utc(event.decoded("RECURRENCE-ID")) if "RECURRENCE-ID" in event else None,
        "rrule": rrules[0].to_ical().decode() if rrules else None,
        "rdates": sorted(utc(t) for t in date_list(event, "RDATE")),
        "exdates": sorted(utc(t) for t in date_list(event, "EXDATE")),
        "sequence": int(event.get("SEQUENCE", 0)),
    }


def parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise Invalid(f"--expand needs instants with an offset, got {text}")
    return value


def expand(calendar, start: datetime, end: datetime) -> list[dict]:
    try:
        import recurring_ical_events
    except ImportError as e:
        raise Invalid("--expand needs `recurring_ical_events`; run scripts/test") from e
    try:
        occurrences = recurring_ical_events.of(calendar).between(start, end)
    except Exception as e:  # its errors have no common base class
        raise Invalid(f"recurring_ical_events cannot expand it: {e}") from e
    out = []
    for occurrence in occurrences:
        out.append(
            {
                "uid": str(occurrence["UID"]),
                "summary": str(occurrence.get("SUMMARY", "")),
                "start": utc(occurrence.decoded("DTSTART")),
                "end": utc(occurrence.decoded("DTEND")) if "DTEND" in occurrence else None,
                "recurrence_id": utc(occurrence.decoded("RECURRENCE-ID"))
                if "RECURRENCE-ID" in occurrence
                else None,
            }
        )
    return sorted(out, key=lambda o: (o["start"], o["uid"]))


def check(raw: bytes, window=None) -> dict:
    check_lines(raw)
    try:
        calendar = icalendar.Calendar.from_ical(raw)
    except Exception as e:  # the parser raises ValueError and friends
        raise Invalid(f"icalendar cannot parse it: {e}") from e
    if calendar.name != "VCALENDAR":
        raise Invalid(f"top-level component is {calendar.name}, not VCALENDAR")
    if str(calendar.get("VERSION", "")) != "2.0":
        raise Invalid("VCALENDAR has no VERSION:2.0")
    if "PRODID" not in calendar:
        raise Invalid("VCALENDAR has no PRODID")
    events = calendar.walk("VEVENT")
    for event in events:
        for name in ("UID", "DTSTAMP", "DTSTART"):
            if name not in event:
                raise Invalid(f"a VEVENT ({event.get('UID', 'no UID')}) has no {name}")
    check_vtimezones(calendar, events)
    out = {"events": [summarize(e) for e in events]}
    if window is not None:
        out["occurrences"] = expand(calendar, *window)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--expand", nargs=2, metavar=("FROM", "TO"))
    args = parser.parse_args()
    try:
        with open(args.file, "rb") as f:
            raw = f.read()
        window = tuple(parse_instant(t) for t in args.expand) if args.expand else None
        result = check(raw, window)
    except (Invalid, OSError) as e:
        print(f"ics_check: {args.file}: {e}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        print(f"ics_check: {args.file}: malformed value ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
