use chrono::{DateTime, Utc};

use super::{IcsEvent, IcsOverride, Lines, escape_text, render};

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn now() -> DateTime<Utc> {
    at("2025-01-01T00:00:00Z")
}

fn event(uid: &str, timezone: &str, starts_at: &str, ends_at: &str) -> IcsEvent {
    IcsEvent {
        uid: uid.into(),
        sequence: 0,
        title: "Event".into(),
        description: String::new(),
        location: String::new(),
        starts_at: at(starts_at),
        ends_at: at(ends_at),
        timezone: timezone.into(),
        rrule: None,
        rdates: vec![],
        exdates: vec![],
        created_at: at("2024-12-01T10:00:00Z"),
        updated_at: at("2024-12-02T10:00:00Z"),
        overrides: vec![],
    }
}

/// Weekly on Mondays, 18:00-19:00 Berlin, from 2025-01-06.
fn berlin_weekly() -> IcsEvent {
    IcsEvent {
        rrule: Some("FREQ=WEEKLY;BYDAY=MO;COUNT=20".into()),
        ..event(
            "weekly@guildhall",
            "Europe/Berlin",
            "2025-01-06T17:00:00Z",
            "2025-01-06T18:00:00Z",
        )
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

fn unfold(ics: &str) -> String {
    ics.replace("\r\n ", "")
}

/// The unfolded content lines.
fn lines(ics: &str) -> Vec<String> {
    unfold(ics)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The content lines of each component named `name` (BEGIN and END excluded).
fn components(ics: &str, name: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in lines(ics) {
        if line == format!("BEGIN:{name}") {
            current = Some(Vec::new());
        } else if line == format!("END:{name}") {
            out.extend(current.take());
        } else if let Some(c) = current.as_mut() {
            c.push(line);
        }
    }
    out
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

#[test]
fn folds_at_75_octets_on_char_boundaries_and_unfolds_back() {
    let summary: String = "Grüße aus Köln — 日本語の会議 🎉; ok, "
        .chars()
        .cycle()
        .take(200)
        .collect();
    let ics = render(
        "Cal",
        &[IcsEvent {
            title: summary.clone(),
            ..event("u", "UTC", "2025-03-01T12:00:00Z", "2025-03-01T13:00:00Z")
        }],
        now(),
    );

    let physical: Vec<&str> = ics.split("\r\n").collect();
    assert_eq!(physical.last(), Some(&""), "ends with CRLF");
    for line in &physical {
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        assert!(!line.contains(['\r', '\n']), "bare CR or LF in {line:?}");
    }
    let folded: Vec<&str> = physical
        .iter()
        .copied()
        .filter(|l| l.starts_with(' '))
        .collect();
    assert!(folded.len() >= 4, "a 200-char summary spans several lines");
    assert!(
        has(&lines(&ics), &format!("SUMMARY:{}", escape_text(&summary))),
        "unfolds back to the escaped summary"
    );

    // Every length and mix: at most 75 octets a line, and unfolding gives the input back.
    let alphabet: Vec<char> = "aé日🎉,".chars().collect();
    for len in 0..300 {
        let content: String = (0..len)
            .map(|i| alphabet[(i * 7 + len) % alphabet.len()])
            .collect();
        let mut out = Lines::default();
        out.line(&content);
        for line in out.out.split("\r\n") {
            assert!(line.len() <= 75, "len {len}: {} octets", line.len());
        }
        assert_eq!(
            out.out.replace("\r\n ", ""),
            format!("{content}\r\n"),
            "len {len}"
        );
        // Folds are not premature: a line is cut only when the next char would not fit.
        let parts: Vec<&str> = out.out.trim_end_matches("\r\n").split("\r\n").collect();
        for part in &parts[..parts.len() - 1] {
            assert!(
                part.len() > 75 - 4,
                "len {len}: early fold at {} octets",
                part.len()
            );
        }
    }
}

#[test]
fn escapes_text() {
    assert_eq!(
        escape_text("a\\b;c,d\ne\r\nf\rg\u{7}h\ti"),
        "a\\\\b\\;c\\,d\\ne\\nf\\ngh\ti"
    );
    let ics = render(
        "Team; A, B",
        &[IcsEvent {
            title: "Plan, review; ship".into(),
            description: "line one\nline two \\ done".into(),
            location: "Room 1, Floor 2".into(),
            ..event("u", "UTC", "2025-03-01T12:00:00Z", "2025-03-01T13:00:00Z")
        }],
        now(),
    );
    let lines = lines(&ics);
    assert!(has(&lines, "X-WR-CALNAME:Team\\; A\\, B"));
    assert!(has(&lines, "SUMMARY:Plan\\, review\\; ship"));
    assert!(has(&lines, "DESCRIPTION:line one\\nline two \\\\ done"));
    assert!(has(&lines, "LOCATION:Room 1\\, Floor 2"));
}

#[test]
fn calendar_header_and_utc_event_in_z_form() {
    let ics = render(
        "Cal",
        &[event(
            "one@guildhall",
            "UTC",
            "2025-03-01T12:00:00Z",
            "2025-03-01T13:30:00Z",
        )],
        now(),
    );
    assert!(ics.starts_with(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Guildhall//Guildhall//EN\r\nCALSCALE:GREGORIAN\r\nX-WR-CALNAME:Cal\r\n"
    ));
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert!(!ics.contains("VTIMEZONE") && !ics.contains("TZID"), "{ics}");
    let events = components(&ics, "VEVENT");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    for line in [
        "UID:one@guildhall",
        "DTSTAMP:20250101T000000Z",
        "CREATED:20241201T100000Z",
        "LAST-MODIFIED:20241202T100000Z",
        "SEQUENCE:0",
        "SUMMARY:Event",
        "DTSTART:20250301T120000Z",
        "DTEND:20250301T133000Z",
    ] {
        assert!(has(e, line), "{line} missing in {e:?}");
    }
    assert!(
        !e.iter()
            .any(|l| l.starts_with("RRULE") || l.starts_with("DESCRIPTION"))
    );
    // Etc/UTC and unknown zones also fall back to UTC.
    for zone in ["Etc/UTC", "Mars/Olympus_Mons"] {
        let ics = render(
            "Cal",
            &[event(
                "u",
                zone,
                "2025-03-01T12:00:00Z",
                "2025-03-01T13:00:00Z",
            )],
            now(),
        );
        assert!(
            ics.contains("\r\nDTSTART:20250301T120000Z\r\n") && !ics.contains("TZID"),
            "{zone}"
        );
    }
}

#[test]
fn weekly_berlin_series_uses_local_time_rrule_and_vtimezone() {
    let mut summer = berlin_weekly();
    summer.uid = "summer@guildhall".into();
    summer.exdates = vec![at("2025-07-07T16:00:00Z")];
    summer.rdates = vec![at("2025-07-09T16:00:00Z")];
    let ics = render("Cal", &[berlin_weekly(), summer], now());

    let events = components(&ics, "VEVENT");
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert!(
        has(e, "DTSTART;TZID=Europe/Berlin:20250106T180000"),
        "{e:?}"
    );
    assert!(has(e, "DTEND;TZID=Europe/Berlin:20250106T190000"));
    assert!(has(e, "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=20"));
    // Summer dates are CEST: 16:00Z is 18:00 local.
    assert!(has(&events[1], "EXDATE;TZID=Europe/Berlin:20250707T180000"));
    assert!(has(&events[1], "RDATE;TZID=Europe/Berlin:20250709T180000"));

    let zones = components(&ics, "VTIMEZONE");
    assert_eq!(zones.len(), 1, "one VTIMEZONE per zone");
    assert!(ics.find("BEGIN:VTIMEZONE") < ics.find("BEGIN:VEVENT"));
    let daylight = &components(&ics, "DAYLIGHT")[0];
    let standard = &components(&ics, "STANDARD")[0];
    assert!(has(&zones[0], "TZID:Europe/Berlin"));
    // The range starts the year before the first event; DTSTART is the local time before.
    for line in [
        "DTSTART:20240331T020000",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "RDATE:20250330T020000",
    ] {
        assert!(
            has(daylight, line),
            "{line} missing in DAYLIGHT {daylight:?}"
        );
    }
    for line in [
        "DTSTART:20241027T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "RDATE:20251026T030000",
    ] {
        assert!(
            has(standard, line),
            "{line} missing in STANDARD {standard:?}"
        );
    }
    // A COUNT rule is open-ended for the VTIMEZONE: ten years past the later of start and now.
    assert!(has(daylight, "RDATE:20350325T020000"), "{daylight:?}");
    assert!(!daylight.iter().any(|l| l.starts_with("RDATE:2036")));
}

#[test]
fn until_bounds_the_vtimezone_and_new_york_offsets_are_negative() {
    let ny = IcsEvent {
        rrule: Some("RRULE:FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20260115T230000Z".into()),
        ..event(
            "ny",
            "America/New_York",
            "2025-01-15T23:00:00Z",
            "2025-01-16T00:00:00Z",
        )
    };
    let ics = render("Cal", &[ny], now());
    assert!(
        has(
            &lines(&ics),
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20260115T230000Z"
        ),
        "prefix stripped"
    );
    assert!(has(
        &lines(&ics),
        "DTSTART;TZID=America/New_York:20250115T180000"
    ));
    let daylight = &components(&ics, "DAYLIGHT")[0];
    for line in [
        "DTSTART:20240310T020000",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0400",
        "TZNAME:EDT",
        "RDATE:20260308T020000",
    ] {
        assert!(has(daylight, line), "{line} missing in {daylight:?}");
    }
    assert!(
        !daylight.iter().any(|l| l.starts_with("RDATE:2027")),
        "{daylight:?}"
    );
}

#[test]
fn zone_without_transitions_gets_one_standard() {
    let ics = render(
        "Cal",
        &[event(
            "t",
            "Asia/Tokyo",
            "2025-03-01T01:00:00Z",
            "2025-03-01T02:00:00Z",
        )],
        now(),
    );
    assert!(components(&ics, "DAYLIGHT").is_empty());
    let standard = components(&ics, "STANDARD");
    assert_eq!(standard.len(), 1);
    for line in [
        "DTSTART:20240101T090000",
        "TZOFFSETFROM:+0900",
        "TZOFFSETTO:+0900",
        "TZNAME:JST",
    ] {
        assert!(has(&standard[0], line), "{line} missing in {standard:?}");
    }
    assert!(ics.contains("DTSTART;TZID=Asia/Tokyo:20250301T100000"));
}

#[test]
fn edited_occurrence_gets_its_own_vevent_with_recurrence_id() {
    let mut series = berlin_weekly();
    series.sequence = 3;
    series.overrides = vec![IcsOverride {
        title: Some("Moved, once".into()),
        starts_at: Some(at("2025-01-13T18:00:00Z")),
        ..edit("2025-01-13T17:00:00Z")
    }];
    let ics = render("Cal", &[series], now());
    let events = components(&ics, "VEVENT");
    assert_eq!(events.len(), 2);
    assert!(
        !events[0]
            .iter()
            .any(|l| l.starts_with("RECURRENCE-ID") || l.starts_with("EXDATE"))
    );
    let o = &events[1];
    for line in [
        "UID:weekly@guildhall",
        "SEQUENCE:3",
        "RECURRENCE-ID;TZID=Europe/Berlin:20250113T180000",
        "SUMMARY:Moved\\, once",
        "DTSTART;TZID=Europe/Berlin:20250113T190000",
        // A new start without a new end keeps the series' hour.
        "DTEND;TZID=Europe/Berlin:20250113T200000",
    ] {
        assert!(has(o, line), "{line} missing in {o:?}");
    }
    assert!(!o.iter().any(|l| l.starts_with("RRULE")));
}

#[test]
fn cancelled_occurrence_becomes_an_exdate() {
    let mut series = berlin_weekly();
    series.exdates = vec![at("2025-01-27T17:00:00Z")];
    series.overrides = vec![
        IcsOverride {
            cancelled: true,
            ..edit("2025-01-20T17:00:00Z")
        },
        // An edit of an excluded start is dropped with it.
        IcsOverride {
            title: Some("x".into()),
            ..edit("2025-01-27T17:00:00Z")
        },
    ];
    let ics = render("Cal", &[series], now());
    let events = components(&ics, "VEVENT");
    assert_eq!(events.len(), 1, "{ics}");
    let exdates: Vec<&String> = events[0]
        .iter()
        .filter(|l| l.starts_with("EXDATE"))
        .collect();
    assert_eq!(
        exdates,
        [
            "EXDATE;TZID=Europe/Berlin:20250120T180000",
            "EXDATE;TZID=Europe/Berlin:20250127T180000"
        ]
    );
}

#[test]
fn single_event_takes_its_override_in_place() {
    let mut one = event(
        "one",
        "Europe/Berlin",
        "2025-02-01T10:00:00Z",
        "2025-02-01T11:00:00Z",
    );
    one.overrides = vec![IcsOverride {
        location: Some("Hall".into()),
        ends_at: Some(at("2025-02-01T12:00:00Z")),
        ..edit("2025-02-01T10:00:00Z")
    }];
    let ics = render("Cal", std::slice::from_ref(&one), now());
    let events = components(&ics, "VEVENT");
    assert_eq!(events.len(), 1);
    assert!(has(&events[0], "LOCATION:Hall"));
    assert!(has(&events[0], "DTEND;TZID=Europe/Berlin:20250201T130000"));
    assert!(!ics.contains("RECURRENCE-ID"));

    one.overrides[0].cancelled = true;
    let ics = render("Cal", &[one], now());
    assert!(
        components(&ics, "VEVENT").is_empty() && !ics.contains("VTIMEZONE"),
        "{ics}"
    );
}

#[test]
fn second_instance_of_a_repeated_hour_is_written_in_utc() {
    // Daily 02:30 Berlin; on 2025-10-26 02:30 happens twice: 00:30Z (CEST) and 01:30Z (CET).
    let mut daily = event(
        "d",
        "Europe/Berlin",
        "2025-10-20T00:30:00Z",
        "2025-10-20T01:00:00Z",
    );
    daily.rrule = Some("FREQ=DAILY".into());
    daily.exdates = vec![at("2025-10-26T00:30:00Z")];
    daily.rdates = vec![at("2025-10-26T01:30:00Z")];
    let ics = render("Cal", &[daily], now());
    let e = &components(&ics, "VEVENT")[0];
    assert!(has(e, "EXDATE;TZID=Europe/Berlin:20251026T023000"), "{e:?}");
    assert!(has(e, "RDATE:20251026T013000Z"), "{e:?}");
}

#[test]
fn zero_length_event_has_no_dtend() {
    let ics = render(
        "Cal",
        &[event(
            "z",
            "UTC",
            "2025-03-01T12:00:00Z",
            "2025-03-01T12:00:00Z",
        )],
        now(),
    );
    assert!(!ics.contains("DTEND"));
}
