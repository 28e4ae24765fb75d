//! Pure expansion of a stored series (first start/end, IANA zone, RRULE, RDATEs, EXDATEs) into
//! the original starts of its occurrences. Owns the recurrence semantics; imports only chrono,
//! chrono-tz and rrule (no database, no HTTP), so the service, the feed and the tests share it.
//!
//! Semantics:
//! - The wall-clock time of `starts_at` in `timezone` recurs (weekly 18:00 Berlin stays 18:00).
//!   The rule is expanded in local wall-clock time; each local time is then resolved the
//!   RFC 5545 §3.3.5 way: a time in a DST gap uses the offset before the gap (it moves forward
//!   by the gap's length), an ambiguous time in an overlap is its first occurrence.
//! - `starts_at` itself is always the first occurrence and counts towards COUNT (RFC 5545
//!   §3.3.10), also when it does not match the rule (calendar apps show it too).
//! - RDATEs are added, EXDATEs remove the occurrence whose original start is that instant.
//! - COUNT counts DTSTART and rule instances, EXDATEd ones included (what [`count_before`] counts).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use rrule::{Frequency, NWeekday, RRule, RRuleSet, Tz, Unvalidated};

/// A series as stored: first occurrence's start/end instants, its IANA zone, optional RRULE
/// value (no "RRULE:" prefix), RDATEs and EXDATEs as instants.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: &'a str,
    pub rrule: Option<&'a str>,
    pub rdates: &'a [DateTime<Utc>],
    pub exdates: &'a [DateTime<Utc>],
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ExpandError {
    #[error("unknown time zone {0:?}")]
    Timezone(String),
    #[error("invalid rule: {0}")]
    Rule(String),
}

/// Original starts (UTC) of the occurrences in a window, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    pub starts: Vec<DateTime<Utc>>,
    /// More occurrences overlap the window than the `limit` returned.
    pub truncated: bool,
}

/// A local wall-clock time and the instant it denotes differ by at most 26 h (UTC-12..UTC+14),
/// so a naive local time more than this past an instant can only resolve to a later instant.
const MARGIN: Duration = Duration::days(2);

/// Rule instances looked at per call, before the window included. Keeps a far-away window of
/// an hourly series from turning one request into minutes of work.
const MAX_SCANNED: usize = 500_000;

pub fn check_timezone(name: &str) -> Result<(), ExpandError> {
    zone(name).map(drop)
}

/// Validates the rule against the series (parse + rrule crate validation, incl. UNTIL rules of
/// RFC 5545 with a TZID start: UNTIL must be a UTC date-time); returns the normalized rule text.
pub fn check_rule(series: &Series) -> Result<Option<String>, ExpandError> {
    let prepared = Prepared::new(series)?;
    Ok(prepared.text)
}

/// Original starts (UTC) of occurrences whose span [start, start+duration) overlaps [from, to),
/// sorted ascending, deduplicated, EXDATEs removed, RDATEs added; at most `limit` (then
/// `truncated` = true). A zero-length occurrence overlaps when from <= start < to.
pub fn expand(
    series: &Series,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Result<Expansion, ExpandError> {
    let prepared = Prepared::new(series)?;
    let duration = prepared.duration;
    let overlaps = |s: DateTime<Utc>| s < to && (s >= from || plus(s, duration) > from);
    // The first `limit + 1` starts are enough to answer and to tell whether there are more.
    let keep = limit.saturating_add(1);
    let mut found = BTreeSet::new();
    let add = |found: &mut BTreeSet<DateTime<Utc>>, s: DateTime<Utc>| {
        if overlaps(s) && !series.exdates.contains(&s) {
            found.insert(s);
            if found.len() > keep {
                found.pop_last();
            }
        }
    };
    for &rdate in series.rdates {
        add(&mut found, rdate);
    }
    let end = plus(to, MARGIN);
    prepared.scan(|local, start| {
        let local = local.and_utc();
        if local > end {
            return ControlFlow::Break(());
        }
        if found.len() == keep && found.last().is_some_and(|&last| local > plus(last, MARGIN)) {
            return ControlFlow::Break(());
        }
        add(&mut found, start);
        ControlFlow::Continue(())
    })?;
    let truncated = found.len() > limit;
    Ok(Expansion {
        starts: found.into_iter().take(limit).collect(),
        truncated,
    })
}

/// Whether `at` is an original start of the series (for keying per-occurrence edits/RSVPs).
/// EXDATEd starts are not.
pub fn is_occurrence(series: &Series, at: DateTime<Utc>) -> Result<bool, ExpandError> {
    let prepared = Prepared::new(series)?;
    if series.exdates.contains(&at) {
        return Ok(false);
    }
    if series.rdates.contains(&at) {
        return Ok(true);
    }
    let end = plus(at, MARGIN);
    let mut hit = false;
    prepared.scan(|local, start| {
        hit = start == at;
        if hit || local.and_utc() > end {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(hit)
}

/// Occurrences strictly before `at` (bounded by `limit`), used to split a COUNT rule: the
/// instances COUNT counts, so `starts_at` and EXDATEd instances are included, RDATEs are not.
/// The series from `at` on keeps `COUNT - count_before(..)` occurrences.
pub fn count_before(
    series: &Series,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<usize, ExpandError> {
    let prepared = Prepared::new(series)?;
    let end = plus(at, MARGIN);
    let mut count = 0;
    prepared.scan(|local, start| {
        if start < at {
            count += 1;
        }
        if count >= limit || local.and_utc() > end {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(count.min(limit))
}

/// The rule ending before `at`: UNTIL = at - 1 s in UTC, COUNT removed.
pub fn rule_until(rule: &str, at: DateTime<Utc>) -> String {
    let until = (at - Duration::seconds(1)).format("%Y%m%dT%H%M%SZ");
    replace_bound(rule, &format!("UNTIL={until}"))
}

/// The rule with COUNT replaced (and UNTIL removed).
pub fn rule_with_count(rule: &str, count: u32) -> String {
    replace_bound(rule, &format!("COUNT={count}"))
}

/// Puts `bound` where the rule's first COUNT or UNTIL part was (or at the end), dropping both.
fn replace_bound(rule: &str, bound: &str) -> String {
    let mut parts: Vec<&str> = rule.split(';').filter(|p| !p.is_empty()).collect();
    match parts.iter().position(|p| is_bound(p)) {
        Some(i) => parts[i] = bound,
        None => parts.push(bound),
    }
    let mut seen = false;
    parts.retain(|p| !is_bound(p) || !std::mem::replace(&mut seen, true));
    parts.join(";")
}

fn is_bound(part: &str) -> bool {
    let key = part.split('=').next().unwrap_or_default();
    key.eq_ignore_ascii_case("COUNT") || key.eq_ignore_ascii_case("UNTIL")
}

/// A series checked and ready to scan.
struct Prepared {
    tz: Tz,
    start: DateTime<Utc>,
    /// `starts_at` on the local wall clock, whole seconds (RRULE has second precision).
    start_local: NaiveDateTime,
    duration: Duration,
    /// The rule expanded in "floating" time: local wall-clock times written as UTC, so the
    /// crate does pure calendar arithmetic and DST is resolved here, the RFC way.
    floating: Option<RRuleSet>,
    until: Option<DateTime<Utc>>,
    text: Option<String>,
}

impl Prepared {
    fn new(series: &Series) -> Result<Self, ExpandError> {
        let tz = zone(series.timezone)?;
        let start = series.starts_at;
        let start_local = start.with_timezone(&tz).naive_local();
        let start_local = start_local.with_nanosecond(0).unwrap_or(start_local);
        let mut prepared = Self {
            tz,
            start,
            start_local,
            duration: (series.ends_at - start).max(Duration::zero()),
            floating: None,
            until: None,
            text: None,
        };
        let Some(text) = series.rrule else {
            return Ok(prepared);
        };
        let (rule, unbounded) = parse_rule(text)?;
        // The crate's own checks against the real start, e.g. UNTIL must be UTC with a TZID.
        rule.clone()
            .validate(start.with_timezone(&tz))
            .map_err(rule_error)?;
        prepared.until = rule.get_until().map(|u| u.with_timezone(&Utc));
        prepared.text = Some(rule.to_string());

        let floating_start = Tz::UTC.from_utc_datetime(&start_local);
        let floating = |rule: RRule<Unvalidated>| {
            rule.build(floating_start)
                .map(RRuleSet::limit)
                .map_err(rule_error)
        };
        // The crate gives up after `MAX_ITER_LOOP` empty periods (its `limited` flag does not
        // say so), so the first instance of the rule without COUNT/UNTIL tells a rule that
        // never matches from one that ends early.
        let Some(first) = (&floating(unbounded)?).into_iter().next() else {
            return Err(ExpandError::Rule("the rule produces no occurrences".into()));
        };
        let in_sync = first.naive_utc() == start_local;
        let rule = match prepared.until {
            // Generous in floating time; the exact UTC bound is applied in `scan`.
            Some(until) => rule.until(plus(until, MARGIN).with_timezone(&Tz::UTC)),
            None => rule,
        };
        prepared.floating = match rule.get_count() {
            // DTSTART counts as the first of COUNT even when the rule does not produce it.
            Some(count) if !in_sync && count <= 1 => None,
            Some(count) if !in_sync => Some(floating(rule.count(count - 1))?),
            _ => Some(floating(rule)?),
        };
        Ok(prepared)
    }

    /// Visits DTSTART and then the rule's instances in generation (local wall-clock) order as
    /// (local time, instant), until `visit` breaks or the rule ends. EXDATE/RDATE not applied.
    fn scan(
        &self,
        mut visit: impl FnMut(NaiveDateTime, DateTime<Utc>) -> ControlFlow<()>,
    ) -> Result<(), ExpandError> {
        if visit(self.start_local, self.start).is_break() {
            return Ok(());
        }
        let Some(set) = &self.floating else {
            return Ok(());
        };
        // The crate gives up after `MAX_ITER_LOOP` empty periods: no endless spinning.
        for (scanned, local) in set.into_iter().map(|d| d.naive_utc()).enumerate() {
            if scanned >= MAX_SCANNED {
                return Err(ExpandError::Rule(format!(
                    "more than {MAX_SCANNED} occurrences before the window"
                )));
            }
            if local == self.start_local {
                continue; // DTSTART, visited above
            }
            let start = resolve(self.tz, local);
            // Ends at the first instance past UNTIL, as the rule iterators of the crate and
            // of python-dateutil do.
            if self.until.is_some_and(|until| start > until) {
                break;
            }
            if start < self.start {
                continue; // only when `starts_at` is the second of an ambiguous local time
            }
            if visit(local, start).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// The rule, and the rule without COUNT and UNTIL.
fn parse_rule(text: &str) -> Result<(RRule<Unvalidated>, RRule<Unvalidated>), ExpandError> {
    let text = text.trim();
    let text = match text.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &text[6..],
        _ => text,
    };
    if text.contains([':', '\n', '\r']) {
        return Err(ExpandError::Rule(
            "expected one RRULE value such as FREQ=WEEKLY;BYDAY=MO".into(),
        ));
    }
    let rule = RRule::<Unvalidated>::from_str(text).map_err(rule_error)?;
    let days = rule.get_by_weekday();
    let ordinals = days
        .iter()
        .filter(|d| matches!(d, NWeekday::Nth(..)))
        .count();
    let ordinals_allowed = match rule.get_freq() {
        Frequency::Monthly => true,
        Frequency::Yearly => rule.get_by_week_no().is_empty(),
        _ => false,
    };
    let problem = match rule.get_freq() {
        Frequency::Minutely | Frequency::Secondly => Some("FREQ must be HOURLY or coarser"),
        _ if rule.get_interval() == 0 => Some("INTERVAL must be positive"),
        _ if rule.get_count() == Some(0) => Some("COUNT must be positive"),
        _ if rule.get_count().is_some() && rule.get_until().is_some() => {
            Some("COUNT and UNTIL must not both be given")
        }
        // What the crate's validation says too, in words a client can act on.
        _ if rule.get_until().is_some_and(|u| u.timezone().is_local()) => {
            Some("UNTIL must be a UTC date-time such as 20251231T235959Z")
        }
        _ if ordinals > 0 && !ordinals_allowed => Some(
            "BYDAY takes ordinals (like 1MO) only with FREQ=MONTHLY or YEARLY without BYWEEKNO",
        ),
        // RFC 5545 makes BYDAY=1MO,WE every Wednesday plus the first Monday; the crate (like
        // python-dateutil) would produce neither, so such a rule is refused, not misread.
        _ if ordinals > 0 && ordinals < days.len() => {
            Some("BYDAY must not mix weekdays with and without an ordinal (like 1MO,WE)")
        }
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(ExpandError::Rule(problem.into()));
    }
    let unbounded: Vec<&str> = text.split(';').filter(|p| !is_bound(p)).collect();
    let unbounded = RRule::<Unvalidated>::from_str(&unbounded.join(";")).map_err(rule_error)?;
    Ok((rule, unbounded))
}

fn rule_error(err: rrule::RRuleError) -> ExpandError {
    ExpandError::Rule(err.to_string())
}

/// The zone by IANA name, from the chrono-tz copy rrule itself uses.
fn zone(name: &str) -> Result<Tz, ExpandError> {
    chrono_tz::Tz::from_str(name)
        .map(Tz::from)
        .map_err(|_| ExpandError::Timezone(name.to_owned()))
}

/// The instant of a local wall-clock time, as RFC 5545 §3.3.5 says: a time in a gap is
/// interpreted with the offset before the gap, an ambiguous time is the first of the two.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = tz.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // In a gap. Step back to a time that exists (gaps are at most a day, e.g. Samoa 2011).
    let before = (1..=60).find_map(|k| {
        tz.from_local_datetime(&(local - Duration::minutes(30 * k)))
            .latest()
    });
    let offset = before.map_or(0, |b| b.offset().fix().local_minus_utc());
    (local - Duration::seconds(i64::from(offset))).and_utc()
}

fn plus(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn series<'a>(start: &str, minutes: i64, tz: &'a str, rule: Option<&'a str>) -> Series<'a> {
        Series {
            starts_at: at(start),
            ends_at: at(start) + Duration::minutes(minutes),
            timezone: tz,
            rrule: rule,
            rdates: &[],
            exdates: &[],
        }
    }

    fn starts(series: &Series, from: &str, to: &str) -> Vec<String> {
        let expansion = expand(series, at(from), at(to), 1000).unwrap();
        assert!(!expansion.truncated);
        let rfc3339 = |s: &DateTime<Utc>| s.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        expansion.starts.iter().map(rfc3339).collect()
    }

    #[test]
    fn weekly_berlin_keeps_local_time_across_both_dst_switches() {
        // Thursday 18:00 CET.
        let s = series(
            "2025-03-20T17:00:00Z",
            90,
            "Europe/Berlin",
            Some("FREQ=WEEKLY"),
        );
        let got = starts(&s, "2025-03-01T00:00:00Z", "2025-11-14T00:00:00Z");
        assert_eq!(got.len(), 35);
        assert_eq!(
            &got[..3],
            [
                "2025-03-20T17:00:00Z",
                "2025-03-27T17:00:00Z",
                "2025-04-03T16:00:00Z"
            ]
        );
        assert_eq!(
            &got[31..34],
            [
                "2025-10-23T16:00:00Z",
                "2025-10-30T17:00:00Z",
                "2025-11-06T17:00:00Z"
            ]
        );
        for start in &got {
            let local = at(start).with_timezone(&Tz::Europe__Berlin);
            assert_eq!((local.hour(), local.minute()), (18, 0), "{start}");
        }
    }

    #[test]
    fn gap_moves_forward_and_overlap_takes_the_first() {
        let s = series(
            "2025-03-28T01:30:00Z",
            30,
            "Europe/Berlin",
            Some("FREQ=DAILY"),
        );
        // 02:30 does not exist on 30 March: 02:30 at the winter offset, i.e. 03:30 CEST.
        let got = starts(&s, "2025-03-29T00:00:00Z", "2025-04-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-03-29T01:30:00Z",
                "2025-03-30T01:30:00Z",
                "2025-03-31T00:30:00Z"
            ]
        );
        let s = series(
            "2025-10-24T00:30:00Z",
            30,
            "Europe/Berlin",
            Some("FREQ=DAILY"),
        );
        // 02:30 happens twice on 26 October: the first one, still CEST.
        let got = starts(&s, "2025-10-25T00:00:00Z", "2025-10-28T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-10-25T00:30:00Z",
                "2025-10-26T00:30:00Z",
                "2025-10-27T01:30:00Z"
            ]
        );
    }

    #[test]
    fn monthly_last_friday_and_last_day_of_month() {
        let s = series(
            "2025-01-31T10:00:00Z",
            60,
            "UTC",
            Some("FREQ=MONTHLY;BYDAY=-1FR;COUNT=4"),
        );
        let got = starts(&s, "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        let fridays = [
            "2025-01-31T10:00:00Z",
            "2025-02-28T10:00:00Z",
            "2025-03-28T10:00:00Z",
            "2025-04-25T10:00:00Z",
        ];
        assert_eq!(got, fridays);
        let s = series(
            "2024-01-31T10:00:00Z",
            60,
            "UTC",
            Some("FREQ=MONTHLY;BYMONTHDAY=-1"),
        );
        let got = starts(&s, "2024-01-01T00:00:00Z", "2024-05-01T00:00:00Z");
        let last_days = [
            "2024-01-31T10:00:00Z",
            "2024-02-29T10:00:00Z",
            "2024-03-31T10:00:00Z",
            "2024-04-30T10:00:00Z",
        ];
        assert_eq!(got, last_days);
    }

    #[test]
    fn count_and_until_bound_the_series() {
        let s = series(
            "2025-01-01T09:00:00Z",
            60,
            "UTC",
            Some("FREQ=DAILY;COUNT=3"),
        );
        let got = starts(&s, "2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-01-01T09:00:00Z",
                "2025-01-02T09:00:00Z",
                "2025-01-03T09:00:00Z"
            ]
        );
        // UNTIL is inclusive.
        let rule = Some("FREQ=DAILY;UNTIL=20250103T090000Z");
        let s = series("2025-01-01T09:00:00Z", 60, "Europe/Berlin", rule);
        let got = starts(&s, "2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-01-01T09:00:00Z",
                "2025-01-02T09:00:00Z",
                "2025-01-03T09:00:00Z"
            ]
        );
    }

    #[test]
    fn exdates_remove_and_rdates_add() {
        let exdates = [at("2025-01-02T09:00:00Z"), at("2025-01-02T10:00:00Z")];
        let rdates = [
            at("2025-01-03T09:00:00Z"),
            at("2025-01-10T12:30:00Z"),
            at("2025-01-02T09:00:00Z"),
        ];
        let s = Series {
            exdates: &exdates,
            rdates: &rdates,
            ..series(
                "2025-01-01T09:00:00Z",
                60,
                "UTC",
                Some("FREQ=DAILY;COUNT=3"),
            )
        };
        let got = starts(&s, "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-01-01T09:00:00Z",
                "2025-01-03T09:00:00Z",
                "2025-01-10T12:30:00Z"
            ]
        );
        // Without a rule: the one occurrence plus RDATEs.
        let s = Series {
            rdates: &rdates[1..2],
            ..series("2025-01-01T09:00:00Z", 60, "UTC", None)
        };
        let got = starts(&s, "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
        assert_eq!(got, ["2025-01-01T09:00:00Z", "2025-01-10T12:30:00Z"]);
    }

    #[test]
    fn windows_overlapping_an_occurrence_include_it() {
        let s = series("2025-01-01T09:00:00Z", 120, "UTC", Some("FREQ=DAILY"));
        let got = starts(&s, "2025-01-02T10:59:59Z", "2025-01-02T11:00:00Z");
        assert_eq!(got, ["2025-01-02T09:00:00Z"]);
        assert!(starts(&s, "2025-01-02T11:00:00Z", "2025-01-03T09:00:00Z").is_empty());
        // A zero-length occurrence is in a window that starts at it.
        let s = series("2025-01-01T09:00:00Z", 0, "UTC", Some("FREQ=DAILY"));
        assert_eq!(
            starts(&s, "2025-01-02T09:00:00Z", "2025-01-02T09:00:01Z"),
            ["2025-01-02T09:00:00Z"]
        );
        // Spans of several days.
        let s = series(
            "2025-01-01T09:00:00Z",
            3 * 24 * 60,
            "UTC",
            Some("FREQ=WEEKLY"),
        );
        assert_eq!(
            starts(&s, "2025-01-10T00:00:00Z", "2025-01-10T00:00:01Z"),
            ["2025-01-08T09:00:00Z"]
        );
    }

    #[test]
    fn limit_truncates() {
        let s = series("2025-01-01T09:00:00Z", 60, "UTC", Some("FREQ=DAILY"));
        let (from, to) = (at("2025-01-01T00:00:00Z"), at("2025-01-11T00:00:00Z"));
        let got = expand(&s, from, to, 3).unwrap();
        assert!(got.truncated);
        assert_eq!(
            got.starts,
            [
                at("2025-01-01T09:00:00Z"),
                at("2025-01-02T09:00:00Z"),
                at("2025-01-03T09:00:00Z")
            ]
        );
        let got = expand(&s, from, to, 10).unwrap();
        assert_eq!((got.starts.len(), got.truncated), (10, false));
        assert_eq!(
            expand(&s, from, to, 0).unwrap(),
            Expansion {
                starts: vec![],
                truncated: true
            }
        );
    }

    #[test]
    fn start_counts_as_first_occurrence_even_off_rule() {
        // A Tuesday start with a Monday rule: the Tuesday, then Mondays; COUNT includes it.
        let s = series(
            "2025-01-07T09:00:00Z",
            60,
            "UTC",
            Some("FREQ=WEEKLY;BYDAY=MO;COUNT=3"),
        );
        let got = starts(&s, "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-01-07T09:00:00Z",
                "2025-01-13T09:00:00Z",
                "2025-01-20T09:00:00Z"
            ]
        );
        assert_eq!(count_before(&s, at("2025-01-20T09:00:00Z"), 100), Ok(2));
    }

    #[test]
    fn sparse_rules_expand_and_rules_that_never_match_are_refused() {
        let s = series(
            "2025-01-01T09:00:00Z",
            60,
            "UTC",
            Some("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
        );
        let got = starts(&s, "2025-01-01T00:00:00Z", "2033-01-01T00:00:00Z");
        assert_eq!(
            got,
            [
                "2025-01-01T09:00:00Z",
                "2028-02-29T09:00:00Z",
                "2032-02-29T09:00:00Z"
            ]
        );
        // Bounded: the crate gives up after its loop limit instead of spinning.
        let s = series(
            "2025-01-01T09:00:00Z",
            60,
            "UTC",
            Some("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"),
        );
        let refused = ExpandError::Rule("the rule produces no occurrences".into());
        assert_eq!(check_rule(&s), Err(refused.clone()));
        assert_eq!(expand(&s, s.starts_at, s.ends_at, 10), Err(refused));
    }

    #[test]
    fn invalid_rules_and_unknown_zones_are_errors() {
        let check =
            |tz: &str, rule: &str| check_rule(&series("2025-01-01T09:00:00Z", 60, tz, Some(rule)));
        assert_eq!(
            check_timezone("Mars/Olympus_Mons"),
            Err(ExpandError::Timezone("Mars/Olympus_Mons".into()))
        );
        assert_eq!(
            check_timezone("Europe/Berlin\nRRULE:FREQ=DAILY"),
            Err(ExpandError::Timezone(
                "Europe/Berlin\nRRULE:FREQ=DAILY".into()
            ))
        );
        assert_eq!(check_timezone("America/Sao_Paulo"), Ok(()));
        assert!(matches!(
            check("Mars/Olympus_Mons", "FREQ=DAILY"),
            Err(ExpandError::Timezone(_))
        ));
        for rule in [
            "FREQ=SOMETIMES",
            "BYDAY=MO",
            "FREQ=DAILY;COUNT=x",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ=MINUTELY",
            "FREQ=WEEKLY;BYMONTHDAY=3",
            "FREQ=DAILY;COUNT=3;UNTIL=20250110T000000Z",
            // RFC 5545: with a TZID start, UNTIL must be a UTC date-time.
            "FREQ=DAILY;UNTIL=20250110T000000",
            "FREQ=DAILY;UNTIL=20241231T000000Z",
            "FREQ=DAILY\nEXDATE:20250102T090000Z",
            "FREQ=WEEKLY;BYDAY=1MO",
            "FREQ=MONTHLY;BYDAY=1MO,WE",
        ] {
            assert!(
                matches!(check("Europe/Berlin", rule), Err(ExpandError::Rule(_))),
                "{rule}"
            );
        }
        assert_eq!(
            check(
                "Europe/Berlin",
                "freq=weekly;byday=mo,we;count=10;interval=1"
            ),
            Ok(Some("FREQ=WEEKLY;COUNT=10;BYDAY=MO,WE".into()))
        );
        assert_eq!(
            check(
                "UTC",
                "RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20251231T235959Z"
            ),
            Ok(Some(
                "FREQ=MONTHLY;UNTIL=20251231T235959Z;BYDAY=-1FR".into()
            ))
        );
        assert_eq!(
            check_rule(&series("2025-01-01T09:00:00Z", 60, "UTC", None)),
            Ok(None)
        );
    }

    #[test]
    fn rule_until_and_rule_with_count() {
        let split = at("2025-03-10T17:00:00Z");
        assert_eq!(
            rule_until("FREQ=WEEKLY;COUNT=10;BYDAY=MO", split),
            "FREQ=WEEKLY;UNTIL=20250310T165959Z;BYDAY=MO"
        );
        assert_eq!(
            rule_until("FREQ=WEEKLY;BYDAY=MO;UNTIL=20260101T000000Z", split),
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20250310T165959Z"
        );
        assert_eq!(
            rule_until("FREQ=DAILY", split),
            "FREQ=DAILY;UNTIL=20250310T165959Z"
        );
        assert_eq!(
            rule_with_count("FREQ=WEEKLY;COUNT=10;BYDAY=MO", 4),
            "FREQ=WEEKLY;COUNT=4;BYDAY=MO"
        );
        assert_eq!(
            rule_with_count("FREQ=DAILY;UNTIL=20260101T000000Z", 4),
            "FREQ=DAILY;COUNT=4"
        );
        assert_eq!(rule_with_count("FREQ=DAILY", 2), "FREQ=DAILY;COUNT=2");
    }

    #[test]
    fn split_by_count_before_keeps_the_occurrences() {
        let exdates = [at("2025-01-02T09:00:00Z")];
        let s = Series {
            exdates: &exdates,
            ..series(
                "2025-01-01T09:00:00Z",
                60,
                "UTC",
                Some("FREQ=DAILY;COUNT=10"),
            )
        };
        let split = at("2025-01-05T09:00:00Z");
        // EXDATEd instances count towards COUNT, so they count here too.
        assert_eq!(count_before(&s, split, 100), Ok(4));
        assert_eq!(count_before(&s, split, 2), Ok(2));
        assert_eq!(count_before(&s, at("2025-01-01T09:00:00Z"), 100), Ok(0));
        let head = rule_until("FREQ=DAILY;COUNT=10", split);
        let tail = rule_with_count("FREQ=DAILY;COUNT=10", 10 - 4);
        let (from, to) = (at("2024-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"));
        let head = expand(
            &Series {
                rrule: Some(&head),
                ..s
            },
            from,
            to,
            100,
        )
        .unwrap()
        .starts;
        let tail_series = Series {
            starts_at: split,
            ends_at: split + Duration::hours(1),
            rrule: Some(&tail),
            ..s
        };
        let tail = expand(&tail_series, from, to, 100).unwrap().starts;
        let whole = expand(&s, from, to, 100).unwrap().starts;
        assert_eq!([head, tail].concat(), whole);
    }

    #[test]
    fn is_occurrence_knows_original_starts() {
        let exdates = [at("2025-01-02T09:00:00Z")];
        let rdates = [at("2025-01-02T12:00:00Z")];
        let s = Series {
            exdates: &exdates,
            rdates: &rdates,
            ..series("2025-01-01T09:00:00Z", 60, "UTC", Some("FREQ=DAILY"))
        };
        assert_eq!(is_occurrence(&s, at("2025-01-01T09:00:00Z")), Ok(true));
        assert_eq!(is_occurrence(&s, at("2027-06-01T09:00:00Z")), Ok(true));
        assert_eq!(is_occurrence(&s, at("2027-06-01T09:00:01Z")), Ok(false));
        assert_eq!(is_occurrence(&s, at("2024-12-31T09:00:00Z")), Ok(false));
        assert_eq!(is_occurrence(&s, exdates[0]), Ok(false));
        assert_eq!(is_occurrence(&s, rdates[0]), Ok(true));
    }
}
