//! iCalendar (RFC 5545) text for `calendar.ics`: pure, no I/O. The service maps its series and
//! overrides to [`IcsEvent`]s and calls [`render`]. May import chrono and chrono-tz only.
//!
//! Choices (what calendar apps do with the feed depends on them):
//! - One VEVENT per series, carrying RRULE / RDATE / EXDATE, and one VEVENT per edited occurrence
//!   with the same UID and a RECURRENCE-ID: the shape Google, Apple and Outlook write themselves.
//! - A cancelled occurrence is an EXDATE on the series, not an override with STATUS:CANCELLED,
//!   which some clients show struck out and others ignore. Overrides of excluded starts are
//!   dropped for the same reason.
//! - A series with neither RRULE nor RDATE is a single event: an override of its one occurrence
//!   is applied to it in place (no RECURRENCE-ID on a non-recurring event), and cancelling that
//!   occurrence leaves the event out.
//! - Times are local wall-clock with TZID, so clients recur the local time across DST as we do.
//!   UTC zones (and zones the tz database does not know) use the `Z` form and no VTIMEZONE.
//! - A local time in the repeated hour at the end of DST means its first instance (RFC 5545
//!   3.3.5). An instant that is the second one is written in UTC instead, except in DTSTART,
//!   whose local form is what the rule recurs.
//! - Empty DESCRIPTION and LOCATION are left out; a DTEND not after DTSTART is left out (the
//!   event then ends when it starts, RFC 5545 3.6.1).
//! - The RRULE is written as stored (the service keeps UNTIL in UTC, as RFC 5545 requires with a
//!   TZID start), only stripped of a leading `RRULE:` and of line breaks.
//! - VTIMEZONE definitions come from the tz database compiled into chrono-tz: see [`vtimezone`].

mod vtimezone;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, LocalResult, Months, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// One edited or cancelled occurrence of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsOverride {
    /// The start the rule gave this occurrence: its RECURRENCE-ID.
    pub original_start: DateTime<Utc>,
    pub cancelled: bool,
    /// `None` keeps the series' value.
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// One event series as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsEvent {
    /// Stable across renders: clients match updates by UID.
    pub uid: String,
    /// Bumped on each change so clients replace their copy.
    pub sequence: i32,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA zone whose wall-clock time recurs.
    pub timezone: String,
    /// RRULE value, e.g. `FREQ=WEEKLY;BYDAY=MO`.
    pub rrule: Option<String>,
    pub rdates: Vec<DateTime<Utc>>,
    pub exdates: Vec<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub overrides: Vec<IcsOverride>,
}

/// A whole VCALENDAR (PRODID "-//Guildhall//Guildhall//EN", VERSION 2.0, CALSCALE GREGORIAN,
/// X-WR-CALNAME = name), CRLF line endings, lines folded at 75 octets (UTF-8 safe), TEXT values
/// escaped (\\ ; , newline).
pub fn render(name: &str, events: &[IcsEvent], now: DateTime<Utc>) -> String {
    let series: Vec<Series<'_>> = events.iter().filter_map(Series::new).collect();

    // One VTIMEZONE per zone, covering every series in it.
    let mut zones: BTreeMap<&'static str, (Tz, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for s in &series {
        if let Some(tz) = s.zone {
            let (from, to) = s.span(now);
            zones
                .entry(tz.name())
                .and_modify(|(_, lo, hi)| {
                    *lo = (*lo).min(from);
                    *hi = (*hi).max(to);
                })
                .or_insert((tz, from, to));
        }
    }

    let mut ics = Lines::default();
    ics.line("BEGIN:VCALENDAR");
    ics.prop("VERSION", "2.0");
    ics.prop("PRODID", "-//Guildhall//Guildhall//EN");
    ics.prop("CALSCALE", "GREGORIAN");
    ics.text("X-WR-CALNAME", name);
    for (tz, from, to) in zones.values() {
        vtimezone::write(&mut ics, *tz, *from, *to);
    }
    for s in &series {
        s.write(&mut ics, now);
    }
    ics.line("END:VCALENDAR");
    ics.out
}

/// How many years an open-ended rule's VTIMEZONE reaches past its start (or now, if later).
const OPEN_ENDED_YEARS: u32 = 10;

/// A series resolved for writing: overrides sorted into exclusions and edits.
struct Series<'a> {
    event: &'a IcsEvent,
    /// `None`: written in UTC.
    zone: Option<Tz>,
    rrule: Option<String>,
    title: &'a str,
    description: &'a str,
    location: &'a str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    rdates: BTreeSet<DateTime<Utc>>,
    exdates: BTreeSet<DateTime<Utc>>,
    /// Edited occurrences, by original start.
    edits: BTreeMap<DateTime<Utc>, &'a IcsOverride>,
}

impl<'a> Series<'a> {
    /// `None` when the series is a single event whose occurrence is cancelled.
    fn new(event: &'a IcsEvent) -> Option<Self> {
        let rrule = event
            .rrule
            .as_deref()
            .map(clean_rrule)
            .filter(|r| !r.is_empty());
        let mut s = Series {
            event,
            zone: zone_of(&event.timezone),
            title: &event.title,
            description: &event.description,
            location: &event.location,
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            rdates: event.rdates.iter().copied().collect(),
            exdates: event.exdates.iter().copied().collect(),
            edits: BTreeMap::new(),
            rrule,
        };
        if s.rrule.is_none() && s.rdates.is_empty() {
            if let Some(o) = event
                .overrides
                .iter()
                .find(|o| o.original_start == event.starts_at)
            {
                if o.cancelled {
                    return None;
                }
                s.title = o.title.as_deref().unwrap_or(s.title);
                s.description = o.description.as_deref().unwrap_or(s.description);
                s.location = o.location.as_deref().unwrap_or(s.location);
                (s.starts_at, s.ends_at) = moved(o, event.starts_at, s.duration());
            }
            return Some(s);
        }
        s.exdates.extend(
            event
                .overrides
                .iter()
                .filter(|o| o.cancelled)
                .map(|o| o.original_start),
        );
        for o in event.overrides.iter().filter(|o| !o.cancelled) {
            if !s.exdates.contains(&o.original_start) {
                s.edits.entry(o.original_start).or_insert(o);
            }
        }
        Some(s)
    }

    fn duration(&self) -> TimeDelta {
        self.ends_at - self.starts_at
    }

    /// The instants the series' VTIMEZONE must cover.
    fn span(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let mut times: Vec<DateTime<Utc>> = vec![self.starts_at, self.ends_at];
        times.extend(self.rdates.iter().chain(&self.exdates));
        for o in self.edits.values() {
            times.push(o.original_start);
            let (start, end) = moved(o, o.original_start, self.duration());
            times.extend([start, end]);
        }
        let from = times.iter().min().copied().unwrap_or(self.starts_at);
        let mut to = times.iter().max().copied().unwrap_or(self.ends_at);
        if let Some(rule) = &self.rrule {
            let horizon = self
                .starts_at
                .max(now)
                .checked_add_months(Months::new(12 * OPEN_ENDED_YEARS))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let last = until(rule).map_or(horizon, |u| u.min(horizon));
            to = to.max(last + self.duration().max(TimeDelta::zero()));
        }
        (from, to)
    }

    fn write(&self, ics: &mut Lines, now: DateTime<Utc>) {
        let e = self.event;
        ics.line("BEGIN:VEVENT");
        self.common(ics, now);
        write_body(ics, self.title, self.description, self.location);
        ics.time("DTSTART", self.starts_at, self.zone, true);
        if self.ends_at > self.starts_at {
            ics.time("DTEND", self.ends_at, self.zone, false);
        }
        if let Some(rule) = &self.rrule {
            ics.prop("RRULE", rule);
        }
        for at in &self.rdates {
            ics.time("RDATE", *at, self.zone, false);
        }
        for at in &self.exdates {
            ics.time("EXDATE", *at, self.zone, false);
        }
        ics.line("END:VEVENT");

        for o in self.edits.values() {
            ics.line("BEGIN:VEVENT");
            self.common(ics, now);
            ics.time("RECURRENCE-ID", o.original_start, self.zone, false);
            write_body(
                ics,
                o.title.as_deref().unwrap_or(&e.title),
                o.description.as_deref().unwrap_or(&e.description),
                o.location.as_deref().unwrap_or(&e.location),
            );
            let (start, end) = moved(o, o.original_start, self.duration());
            ics.time("DTSTART", start, self.zone, true);
            if end > start {
                ics.time("DTEND", end, self.zone, false);
            }
            ics.line("END:VEVENT");
        }
    }

    /// What the series and its edited occurrences share.
    fn common(&self, ics: &mut Lines, now: DateTime<Utc>) {
        let e = self.event;
        ics.prop("UID", &one_line(&e.uid));
        ics.prop("DTSTAMP", &utc_stamp(now));
        ics.prop("CREATED", &utc_stamp(e.created_at));
        ics.prop("LAST-MODIFIED", &utc_stamp(e.updated_at));
        ics.prop("SEQUENCE", &e.sequence.max(0).to_string());
    }
}

fn write_body(ics: &mut Lines, title: &str, description: &str, location: &str) {
    ics.text("SUMMARY", title);
    if !description.is_empty() {
        ics.text("DESCRIPTION", description);
    }
    if !location.is_empty() {
        ics.text("LOCATION", location);
    }
}

/// An occurrence's start and end after its override: a new start without a new end keeps the
/// series' duration.
fn moved(
    o: &IcsOverride,
    original: DateTime<Utc>,
    duration: TimeDelta,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = o.starts_at.unwrap_or(original);
    (start, o.ends_at.unwrap_or(start + duration))
}

/// The zone to write local times in; `None` for UTC and for names the tz database lacks.
fn zone_of(name: &str) -> Option<Tz> {
    let tz: Tz = name.trim().parse().ok()?;
    let utc = matches!(
        tz.name(),
        "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Etc/Universal" | "Universal" | "Etc/Zulu" | "Zulu"
    );
    (!utc).then_some(tz)
}

fn clean_rrule(rule: &str) -> String {
    let rule = rule.trim();
    let rule = match rule.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &rule[6..],
        _ => rule,
    };
    one_line(rule).trim().to_owned()
}

/// The end of the day a rule's UNTIL names (date precision is enough for a VTIMEZONE's range).
fn until(rule: &str) -> Option<DateTime<Utc>> {
    let value = rule.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("UNTIL")
            .then_some(value.trim())
    })?;
    let date = NaiveDate::parse_from_str(value.get(..8)?, "%Y%m%d").ok()?;
    Some(date.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc())
}

/// A value that must stay on its content line (UID, RRULE): line breaks and controls removed.
fn one_line(value: &str) -> String {
    value.chars().filter(|c| !c.is_ascii_control()).collect()
}

fn utc_stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 5545 3.3.11 TEXT: backslash, semicolon and comma escaped, any line break as `\n`, other
/// control characters (not allowed in TEXT) dropped.
fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\t' => out.push('\t'),
            c if c.is_ascii_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Content lines, CRLF-terminated and folded.
#[derive(Default)]
struct Lines {
    out: String,
}

/// RFC 5545 3.1: lines longer than this many octets (excluding CRLF) are folded.
const FOLD_OCTETS: usize = 75;

impl Lines {
    /// Folds before any character that would take the line past 75 octets, so a multi-byte
    /// character is never split; a continuation line's leading space counts toward its 75.
    fn line(&mut self, content: &str) {
        let mut width = 0;
        for c in content.chars() {
            if width + c.len_utf8() > FOLD_OCTETS {
                self.out.push_str("\r\n ");
                width = 1;
            }
            self.out.push(c);
            width += c.len_utf8();
        }
        self.out.push_str("\r\n");
    }

    fn prop(&mut self, name: &str, value: &str) {
        self.line(&format!("{name}:{value}"));
    }

    fn text(&mut self, name: &str, value: &str) {
        self.prop(name, &escape_text(value));
    }

    /// A DATE-TIME in `zone`'s wall-clock time with TZID, or in UTC when there is no zone. With
    /// `anchor` false, the later instant of an ambiguous local time is written in UTC.
    fn time(&mut self, name: &str, at: DateTime<Utc>, zone: Option<Tz>, anchor: bool) {
        if let Some(tz) = zone {
            let local = at.with_timezone(&tz).naive_local();
            let later = matches!(
                tz.from_local_datetime(&local),
                LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) != at
            );
            if anchor || !later {
                self.line(&format!(
                    "{name};TZID={}:{}",
                    tz.name(),
                    local.format("%Y%m%dT%H%M%S")
                ));
                return;
            }
        }
        self.prop(name, &utc_stamp(at));
    }
}

#[cfg(test)]
mod tests;
