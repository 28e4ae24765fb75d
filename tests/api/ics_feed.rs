//! The iCalendar renderer checked by an independent parser: `scripts/ics_check.py` reads the
//! text with Python's `icalendar` (and expands it with `recurring_ical_events`), and what it
//! understood must be what we meant. Pure: no app, no database.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use guildhall::calendar::ics::{IcsEvent, IcsOverride, render};
use serde_json::Value;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn series(uid: &str, title: &str, timezone: &str, starts_at: &str, ends_at: &str) -> IcsEvent {
    IcsEvent {
        uid: uid.into(),
        sequence: 1,
        title: title.into(),
        description: String::new(),
        location: String::new(),
        starts_at: at(starts_at),
        ends_at: at(ends_at),
        timezone: timezone.into(),
        rrule: None,
        rdates: vec![],
        exdates: vec![],
        created_at: at("2025-01-01T09:00:00Z"),
        updated_at: at("2025-01-02T09:00:00Z"),
        overrides: vec![],
    }
}

fn edit(original_start: &str) -> IcsOverride {
    IcsOverride {
        original_start: at(original_start),
        cancelled: false,
        title: None,
        description: None,
        location: None,
        starts_at: None,
        ends_at: None,
    }
}

const DESCRIPTION: &str = "Agenda:\n1. plans; budgets, dates\n2. back\\slash \"quotes\"\r\nend";

fn calendar() -> Vec<IcsEvent> {
    // Mondays 18:00-19:00 Berlin across the March DST change: 17:00Z, then 16:00Z.
    let weekly = IcsEvent {
        rrule: Some("FREQ=WEEKLY;BYDAY=MO;COUNT=10".into()),
        exdates: vec![at("2025-03-17T17:00:00Z")],
        overrides: vec![
            IcsOverride {
                title: Some("Moved to 19:00".into()),
                starts_at: Some(at("2025-03-24T18:00:00Z")),
                ends_at: Some(at("2025-03-24T19:00:00Z")),
                ..edit("2025-03-24T17:00:00Z")
            },
            IcsOverride {
                cancelled: true,
                ..edit("2025-04-07T16:00:00Z")
            },
        ],
        ..series(
            "weekly@guildhall.test",
            "Weekly sync",
            "Europe/Berlin",
            "2025-03-03T17:00:00Z",
            "2025-03-03T18:00:00Z",
        )
    };
    // The 15th at 18:00 New York (EST, then EDT), plus one extra date.
    let monthly = IcsEvent {
        rrule: Some("FREQ=MONTHLY;BYMONTHDAY=15;COUNT=4".into()),
        rdates: vec![at("2025-03-20T22:00:00Z")],
        ..series(
            "monthly@guildhall.test",
            "Monthly review",
            "America/New_York",
            "2025-01-15T23:00:00Z",
            "2025-01-16T00:30:00Z",
        )
    };
    let launch = series(
        "launch@guildhall.test",
        "Launch",
        "UTC",
        "2025-05-01T12:00:00Z",
        "2025-05-01T13:00:00Z",
    );
    let text = IcsEvent {
        description: DESCRIPTION.into(),
        location: "Room 1, Floor 2; Building \\ B".into(),
        ..series(
            "text@guildhall.test",
            "Plan, review; ship — Grüße 日本 🎉, a title long enough to be folded more than once over",
            "Asia/Tokyo",
            "2025-06-01T01:00:00Z",
            "2025-06-01T02:00:00Z",
        )
    };
    vec![weekly, monthly, launch, text]
}

/// Runs `scripts/ics_check.py` on `ics` (with `--expand` over 2025) and returns its JSON.
fn ics_check(ics: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let import = Command::new("python3")
        .args(["-c", "import icalendar, recurring_ical_events"])
        .output();
    match import {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 cannot import icalendar / recurring_ical_events (run scripts/test, which installs them): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "python3 not found ({e}): run scripts/test, which installs the checker's packages"
        ),
    }
    let file = std::env::temp_dir().join(format!("guildhall-{}.ics", uuid::Uuid::now_v7()));
    std::fs::write(&file, ics).unwrap();
    let out = Command::new("python3")
        .arg(root.join("scripts/ics_check.py"))
        .arg(&file)
        .args(["--expand", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "ics_check rejected the calendar: {}\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// An RRULE value as a map, so part order does not matter.
fn rule_parts(rule: &str) -> BTreeMap<String, String> {
    rule.split(';')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_ascii_uppercase(), v.to_owned())
        })
        .collect()
}

#[test]
fn an_independent_parser_reads_what_the_renderer_means() {
    let ics = render(
        "Guild, events; all",
        &calendar(),
        at("2025-02-01T08:00:00Z"),
    );
    let parsed = ics_check(&ics);

    let events = parsed["events"].as_array().unwrap();
    let ids: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().unwrap(),
                e["summary"].as_str().unwrap(),
                e["recurrence_id"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("weekly@guildhall.test", "Weekly sync", None),
            (
                "weekly@guildhall.test",
                "Moved to 19:00",
                Some("2025-03-24T17:00:00Z")
            ),
            ("monthly@guildhall.test", "Monthly review", None),
            ("launch@guildhall.test", "Launch", None),
            (
                "text@guildhall.test",
                "Plan, review; ship — Grüße 日本 🎉, a title long enough to be folded more than once over",
                None
            ),
        ]
    );

    let weekly = &events[0];
    assert_eq!(weekly["tzid"], "Europe/Berlin");
    assert_eq!(weekly["dtstart"], "2025-03-03T17:00:00Z");
    assert_eq!(weekly["dtend"], "2025-03-03T18:00:00Z");
    assert_eq!(
        rule_parts(weekly["rrule"].as_str().unwrap()),
        rule_parts("FREQ=WEEKLY;BYDAY=MO;COUNT=10")
    );
    // The cancelled occurrence joined the stored exclusion.
    assert_eq!(
        strings(&weekly["exdates"]),
        ["2025-03-17T17:00:00Z", "2025-04-07T16:00:00Z"]
    );
    assert_eq!(weekly["sequence"], 1);

    let moved = &events[1];
    assert_eq!(moved["tzid"], "Europe/Berlin");
    assert_eq!(moved["dtstart"], "2025-03-24T18:00:00Z");
    assert_eq!(moved["dtend"], "2025-03-24T19:00:00Z");
    assert!(moved["rrule"].is_null());

    let monthly = &events[2];
    assert_eq!(monthly["tzid"], "America/New_York");
    assert_eq!(monthly["dtstart"], "2025-01-15T23:00:00Z");
    assert_eq!(strings(&monthly["rdates"]), ["2025-03-20T22:00:00Z"]);
    assert!(strings(&monthly["exdates"]).is_empty());

    let launch = &events[3];
    assert!(launch["tzid"].is_null(), "UTC is written in the Z form");
    assert_eq!(launch["dtstart"], "2025-05-01T12:00:00Z");
    assert!(launch["rrule"].is_null());

    let text = &events[4];
    assert_eq!(text["description"], DESCRIPTION.replace("\r\n", "\n"));
    assert_eq!(text["location"], "Room 1, Floor 2; Building \\ B");
    assert_eq!(text["tzid"], "Asia/Tokyo");
    assert_eq!(text["dtstart"], "2025-06-01T01:00:00Z");

    // Expanded by recurring_ical_events: local 18:00 across DST, exclusions and the move applied.
    let occurrences: Vec<(&str, &str, &str)> = parsed["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["uid"].as_str().unwrap(),
                o["start"].as_str().unwrap(),
                o["summary"].as_str().unwrap(),
            )
        })
        .collect();
    let of = |uid: &str| -> Vec<(&str, &str)> {
        occurrences
            .iter()
            .filter(|o| o.0 == uid)
            .map(|o| (o.1, o.2))
            .collect()
    };
    assert_eq!(
        of("weekly@guildhall.test"),
        [
            ("2025-03-03T17:00:00Z", "Weekly sync"),
            ("2025-03-10T17:00:00Z", "Weekly sync"),
            ("2025-03-24T18:00:00Z", "Moved to 19:00"),
            ("2025-03-31T16:00:00Z", "Weekly sync"),
            ("2025-04-14T16:00:00Z", "Weekly sync"),
            ("2025-04-21T16:00:00Z", "Weekly sync"),
            ("2025-04-28T16:00:00Z", "Weekly sync"),
            ("2025-05-05T16:00:00Z", "Weekly sync"),
        ]
    );
    let monthly_starts: Vec<&str> = of("monthly@guildhall.test").iter().map(|o| o.0).collect();
    assert_eq!(
        monthly_starts,
        [
            "2025-01-15T23:00:00Z",
            "2025-02-15T23:00:00Z",
            "2025-03-15T22:00:00Z",
            "2025-03-20T22:00:00Z",
            "2025-04-15T22:00:00Z",
        ]
    );
    assert_eq!(
        of("launch@guildhall.test"),
        [("2025-05-01T12:00:00Z", "Launch")]
    );
}
