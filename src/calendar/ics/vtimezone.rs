//! VTIMEZONE components (RFC 5545 3.6.5) generated from the tz database compiled into chrono-tz,
//! the same data the expansion uses, rather than a bundled file that could disagree with it.
//!
//! How: the offset (UTC offset, DST part, abbreviation) is sampled once a day over the years the
//! calendar needs, from January 1 of the year before the earliest time through the end of the
//! latest year, and a day whose end differs from its start is bisected to the second of the
//! transition. Transitions of one kind (STANDARD or DAYLIGHT, same offsets and name) share one
//! sub-component: the first is its DTSTART, the later ones RDATEs, all in the local time before
//! the transition. Explicit dates rather than a yearly RRULE fitted to them: exact even where a
//! zone changed its rules inside the range, at two lines a year. Past the range the last
//! observance holds; most clients use their own data for a TZID they know anyway. A zone with no
//! transition in the range gets one STANDARD observance.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz, TzOffset};

use super::Lines;

/// Writes the VTIMEZONE for `tz` covering `from..=to` (widened to whole years, one year before).
pub(super) fn write(ics: &mut Lines, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) {
    let first = from.year() - 1;
    let start = year_start(first);
    let end = year_start(to.year().clamp(first, first + MAX_YEARS) + 1);
    let changes = transitions(tz, start, end);

    ics.line("BEGIN:VTIMEZONE");
    ics.prop("TZID", tz.name());
    if changes.is_empty() {
        let offset = tz.offset_from_utc_datetime(&start.naive_utc());
        write_observance(
            ics,
            false,
            &offset,
            &offset,
            &[local_before(start, &offset)],
        );
    } else {
        // Grouped by kind, in order of first appearance.
        let mut groups: Vec<(&Transition, Vec<NaiveDateTime>)> = Vec::new();
        for t in &changes {
            let local = local_before(t.at, &t.before);
            match groups.iter_mut().find(|(first, _)| first.same_kind(t)) {
                Some((_, starts)) => starts.push(local),
                None => groups.push((t, vec![local])),
            }
        }
        for (t, starts) in &groups {
            write_observance(ics, t.daylight(), &t.before, &t.after, starts);
        }
    }
    ics.line("END:VTIMEZONE");
}

/// `starts[0]` is the DTSTART, the rest RDATEs.
fn write_observance(
    ics: &mut Lines,
    daylight: bool,
    before: &TzOffset,
    after: &TzOffset,
    starts: &[NaiveDateTime],
) {
    let kind = if daylight { "DAYLIGHT" } else { "STANDARD" };
    ics.prop("BEGIN", kind);
    ics.prop("DTSTART", &starts[0].format(LOCAL).to_string());
    ics.prop("TZOFFSETFROM", &utc_offset(before));
    ics.prop("TZOFFSETTO", &utc_offset(after));
    if let Some(name) = after.abbreviation() {
        ics.text("TZNAME", name);
    }
    for at in &starts[1..] {
        ics.prop("RDATE", &at.format(LOCAL).to_string());
    }
    ics.prop("END", kind);
}

/// Bounds the scan (one sample a day) whatever far-off date a series names.
const MAX_YEARS: i32 = 100;

const LOCAL: &str = "%Y%m%dT%H%M%S";

struct Transition {
    /// First second of the new offset.
    at: DateTime<Utc>,
    before: TzOffset,
    after: TzOffset,
}

impl Transition {
    fn daylight(&self) -> bool {
        self.after.dst_offset() > TimeDelta::zero()
    }

    fn same_kind(&self, other: &Transition) -> bool {
        self.daylight() == other.daylight()
            && self.before.fix() == other.before.fix()
            && self.after.fix() == other.after.fix()
            && self.after.abbreviation() == other.after.abbreviation()
    }
}

/// Every change of offset, DST part or abbreviation in `start..end`, in order.
fn transitions(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Transition> {
    let offset_at = |secs: i64| {
        let at = DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
        tz.offset_from_utc_datetime(&at.naive_utc())
    };
    const DAY: i64 = 86_400;
    let (end, mut t) = (end.timestamp(), start.timestamp());
    let mut current = offset_at(t);
    let mut out = Vec::new();
    while t < end {
        let next = (t + DAY).min(end);
        let at_next = offset_at(next);
        // Usually at most one change a day; the loop also finds several.
        while current != at_next {
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let after = offset_at(hi);
            out.push(Transition {
                at: DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
                before: current,
                after,
            });
            (current, t) = (after, hi);
        }
        t = next;
    }
    out
}

fn year_start(year: i32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |d| d.and_utc())
}

/// The wall-clock time `at` shows in the observance `offset`.
fn local_before(at: DateTime<Utc>, offset: &TzOffset) -> NaiveDateTime {
    at.naive_utc() + TimeDelta::seconds(i64::from(offset.fix().local_minus_utc()))
}

/// RFC 5545 UTC-OFFSET: `+HHMM`, with seconds only when there are any; zero is `+0000`.
fn utc_offset(offset: &TzOffset) -> String {
    let secs = offset.fix().local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}
