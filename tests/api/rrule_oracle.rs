//! Differential test of `calendar::expand` against python-dateutil (scripts/rrule_oracle.py):
//! seeded random series (every FREQ from YEARLY to HOURLY, INTERVAL, COUNT, UNTIL, BYDAY with
//! ordinals, BYMONTHDAY incl. negatives, BYMONTH, BYSETPOS, BYYEARDAY, BYWEEKNO, WKST, EXDATE,
//! RDATE), mostly starting around DST switches in several zones, expanded over windows of up to
//! three years here and there; every occurrence must agree. No database: pure logic.

use std::fmt::Write as _;
use std::process::Command;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use guildhall::calendar::expand::{self, Series};
use rrule::Tz;
use serde_json::{Value, json};

const CASES: usize = 2000;
const SEED: u64 = 0x5eed_2026_c41e_da75;

#[test]
fn expansion_agrees_with_python_dateutil() {
    let mut rng = Rng(SEED);
    let mut cases = Vec::with_capacity(CASES);
    let mut ours = Vec::with_capacity(CASES);
    let mut refused = 0;
    for id in 0..CASES {
        let (case, expansion, refused_rules) = generate(&mut rng, id);
        cases.push(case);
        ours.push(expansion);
        refused += refused_rules;
    }
    assert!(
        refused < CASES / 20,
        "check_rule refused {refused} generated rules"
    );

    let path = std::env::temp_dir().join(format!(
        "guildhall-rrule-oracle-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let theirs = run_oracle(&path);
    std::fs::remove_file(&path).ok();
    let theirs = theirs["results"]
        .as_array()
        .expect("oracle output has results");
    assert_eq!(theirs.len(), cases.len());

    let mut mismatches = Vec::new();
    let mut occurrences = 0;
    for ((case, ours), theirs) in cases.iter().zip(&ours).zip(theirs) {
        occurrences += theirs["starts"].as_array().map_or(0, Vec::len);
        if ours != theirs {
            mismatches.push((case, ours, theirs));
        }
    }
    println!(
        "rrule oracle: {} rules, {occurrences} occurrences compared with python-dateutil, {} mismatches \
         ({refused} generated rules refused by check_rule and drawn again)",
        cases.len(),
        mismatches.len()
    );
    let mut report = String::new();
    for (case, ours, theirs) in mismatches.iter().take(5) {
        writeln!(report, "case: {case}\n  ours:   {ours}\n  theirs: {theirs}").unwrap();
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ; first ones:\n{report}",
        mismatches.len(),
        cases.len()
    );
    assert!(
        occurrences > 10 * CASES,
        "too few occurrences compared: {occurrences}"
    );
}

/// Runs the oracle once over all cases; `GUILDHALL_PYTHON` names another interpreter.
fn run_oracle(cases: &std::path::Path) -> Value {
    let python = std::env::var("GUILDHALL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rrule_oracle.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(cases)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): run scripts/test, which installs python3 and python-dateutil"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => serde_json::from_slice(&out.stdout).expect("oracle prints JSON"),
        Some(3) => panic!(
            "python-dateutil is not importable by {python}: run scripts/test, which installs it\n{stderr}"
        ),
        _ => panic!("{python} {script} failed ({}):\n{stderr}", out.status),
    }
}

/// One random series and window, as JSON for the oracle, and our expansion of it.
/// Rules `check_rule` refuses (ones that never match) are drawn again and counted.
fn generate(rng: &mut Rng, id: usize) -> (Value, Value, usize) {
    let zone = &ZONES[rng.below(ZONES.len() as u64) as usize];
    let template = (!zone.rules.is_empty() && rng.chance(30)).then(|| rng.pick(zone.rules));
    let freq = match template {
        Some(template) => template
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("FREQ="),
        None => rng.pick(&[
            "YEARLY", "MONTHLY", "MONTHLY", "WEEKLY", "WEEKLY", "DAILY", "DAILY", "HOURLY",
        ]),
    };
    let starts_at = start(rng, zone, freq);
    let duration = Duration::minutes(rng.pick(&[0, 30, 60, 90, 120, 24 * 60, 3 * 24 * 60]));
    let mut refused = 0;
    let rule = loop {
        let rule = rule(rng, freq, template, starts_at);
        let series = Series {
            starts_at,
            ends_at: starts_at,
            timezone: zone.name,
            rrule: rule.as_deref(),
            rdates: &[],
            exdates: &[],
        };
        match expand::check_rule(&series) {
            Ok(_) => break rule,
            Err(_) => refused += 1,
        }
    };
    let from = if rng.chance(70) {
        starts_at - Duration::days(rng.below(40) as i64)
    } else {
        starts_at
            + Duration::days(rng.below(500) as i64)
            + Duration::minutes(rng.below(1440) as i64)
    };
    let span = match freq {
        "HOURLY" => Duration::hours(1 + rng.below(24 * 60) as i64),
        _ if rng.chance(10) => Duration::hours(1 + rng.below(48) as i64),
        _ => Duration::days(1 + rng.below(3 * 366) as i64),
    };
    let to = from + span;
    let limit = rng.pick(&[50, 50, 50, 10, 1]);
    let mut series = Series {
        starts_at,
        ends_at: starts_at + duration,
        timezone: zone.name,
        rrule: rule.as_deref(),
        rdates: &[],
        exdates: &[],
    };

    // EXDATEs mostly hit occurrences, RDATEs land anywhere, now and then on an occurrence.
    let base = expand::expand(&series, from, to, limit)
        .unwrap_or_else(|e| panic!("case {id}: {rule:?}: {e}"));
    let mut exdates = Vec::new();
    let mut rdates = Vec::new();
    for _ in 0..rng.below(4) {
        if !base.starts.is_empty() && rng.chance(80) {
            exdates.push(base.starts[rng.below(base.starts.len() as u64) as usize]);
        } else {
            exdates.push(from + Duration::minutes(rng.below(60 * 24 * 30) as i64));
        }
    }
    for _ in 0..rng.below(4) {
        if !base.starts.is_empty() && rng.chance(20) {
            rdates.push(base.starts[rng.below(base.starts.len() as u64) as usize]);
        } else if !exdates.is_empty() && rng.chance(10) {
            rdates.push(exdates[0]);
        } else {
            let seconds = (to - from).num_seconds().max(1) as u64;
            rdates.push(from - Duration::hours(3) + Duration::seconds(rng.below(seconds) as i64));
        }
    }
    series.rdates = &rdates;
    series.exdates = &exdates;
    let ours = expand::expand(&series, from, to, limit)
        .unwrap_or_else(|e| panic!("case {id}: {rule:?}: {e}"));

    let case = json!({
        "id": id,
        "timezone": zone.name,
        "starts_at": text(starts_at),
        "duration_s": duration.num_seconds(),
        "rrule": rule,
        "rdates": rdates.iter().copied().map(text).collect::<Vec<_>>(),
        "exdates": exdates.iter().copied().map(text).collect::<Vec<_>>(),
        "from": text(from),
        "to": text(to),
        "limit": limit,
    });
    let ours = json!({
        "starts": ours.starts.into_iter().map(text).collect::<Vec<_>>(),
        "truncated": ours.truncated,
    });
    (case, ours, refused)
}

struct Zone {
    name: &'static str,
    tz: Tz,
    /// Local hours that are skipped (spring) or happen twice (autumn), as "date hour:00".
    switches: &'static [&'static str],
    /// Rules that follow the zone's switch days, without COUNT/UNTIL.
    rules: &'static [&'static str],
}

const ZONES: &[Zone] = &[
    Zone {
        name: "Europe/Berlin",
        tz: Tz::Europe__Berlin,
        switches: &[
            "2024-03-31 02:00",
            "2024-10-27 02:00",
            "2025-03-30 02:00",
            "2025-10-26 02:00",
            "2026-03-29 02:00",
            "2026-10-25 02:00",
        ],
        rules: &[
            "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU",
            "FREQ=MONTHLY;BYDAY=-1SU",
            "FREQ=WEEKLY;BYDAY=SA,SU",
            "FREQ=WEEKLY",
            "FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,30",
            "FREQ=HOURLY",
        ],
    },
    Zone {
        name: "America/New_York",
        tz: Tz::America__New_York,
        switches: &[
            "2024-03-10 02:00",
            "2024-11-03 01:00",
            "2025-03-09 02:00",
            "2025-11-02 01:00",
            "2026-03-08 02:00",
            "2026-11-01 01:00",
        ],
        rules: &[
            "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
            "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
            "FREQ=MONTHLY;BYDAY=1SU,2SU",
            "FREQ=WEEKLY;BYDAY=SU",
            "FREQ=DAILY;BYHOUR=0,1,2",
            "FREQ=HOURLY;INTERVAL=2",
        ],
    },
    Zone {
        name: "Australia/Sydney",
        tz: Tz::Australia__Sydney,
        switches: &[
            "2024-04-07 02:00",
            "2024-10-06 02:00",
            "2025-04-06 02:00",
            "2025-10-05 02:00",
            "2026-04-05 02:00",
            "2026-10-04 02:00",
        ],
        rules: &[
            "FREQ=YEARLY;BYMONTH=4,10;BYDAY=1SU",
            "FREQ=MONTHLY;BYDAY=1SU",
            "FREQ=MONTHLY;BYDAY=SU;BYSETPOS=1",
            "FREQ=WEEKLY;BYDAY=SU",
            "FREQ=DAILY;BYHOUR=2;BYMINUTE=0,15,30,45",
            "FREQ=HOURLY",
        ],
    },
    // Its last years with DST, switching at midnight: local midnight itself was skipped.
    Zone {
        name: "America/Sao_Paulo",
        tz: Tz::America__Sao_Paulo,
        switches: &[
            "2017-10-15 00:00",
            "2018-02-17 23:00",
            "2018-11-04 00:00",
            "2019-02-16 23:00",
        ],
        rules: &[
            "FREQ=WEEKLY;BYDAY=SA,SU",
            "FREQ=DAILY;BYHOUR=0,23",
            "FREQ=MONTHLY;BYMONTHDAY=15,17,-1",
            "FREQ=HOURLY",
        ],
    },
    Zone {
        name: "Asia/Kolkata",
        tz: Tz::Asia__Kolkata,
        switches: &[],
        rules: &[],
    },
    Zone {
        name: "UTC",
        tz: Tz::UTC,
        switches: &[],
        rules: &[],
    },
];

/// A start that exists, mostly a whole number of periods of `freq` before a DST switch at a
/// wall-clock time in the skipped or doubled hour, so that repeats land in the gap or overlap.
fn start(rng: &mut Rng, zone: &Zone, freq: &str) -> DateTime<Utc> {
    let local = if !zone.switches.is_empty() && rng.chance(85) {
        let switch =
            NaiveDateTime::parse_from_str(rng.pick(zone.switches), "%Y-%m-%d %H:%M").unwrap();
        let date = switch.date();
        let date = match freq {
            "YEARLY" => date
                .with_year(date.year() - 1 - rng.below(2) as i32)
                .unwrap_or(date),
            "MONTHLY" => date
                .checked_sub_months(Months::new(1 + rng.below(5) as u32))
                .unwrap(),
            "WEEKLY" => date - Duration::weeks(1 + rng.below(8) as i64),
            _ => date - Duration::days(rng.below(6) as i64),
        };
        let minutes = if rng.chance(70) {
            15 * rng.below(4) as i64
        } else {
            15 * (rng.below(17) as i64 - 8)
        };
        date.and_time(switch.time()) + Duration::minutes(minutes)
    } else {
        let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
            + Duration::days(rng.below(3 * 365) as i64);
        day.and_hms_opt(rng.below(24) as u32, 5 * rng.below(12) as u32, 0)
            .unwrap()
    };
    let local = local
        + Duration::seconds(if rng.chance(5) {
            rng.below(60) as i64
        } else {
            0
        });
    // In a gap: a day earlier the same wall-clock time exists, and still recurs into the gap.
    let at = zone.tz.from_local_datetime(&local).earliest();
    let at = at.or_else(|| {
        zone.tz
            .from_local_datetime(&(local - Duration::days(1)))
            .earliest()
    });
    at.unwrap().with_timezone(&Utc)
}

const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

fn rule(
    rng: &mut Rng,
    freq: &str,
    template: Option<&str>,
    starts_at: DateTime<Utc>,
) -> Option<String> {
    if template.is_none() && rng.chance(3) {
        return None;
    }
    let mut parts = vec![format!("FREQ={freq}")];
    let mut interval = if rng.chance(60) { 1 } else { 2 + rng.below(3) };
    match freq {
        _ if template.is_some() => {
            parts.extend(template.unwrap().split(';').skip(1).map(str::to_owned));
            interval = 1;
        }
        "YEARLY" => match rng.below(6) {
            0 => {}
            1 => {
                parts.push(months(rng));
                parts.push(list("BYMONTHDAY", &month_days(rng, 28)));
            }
            2 => {
                parts.push(months(rng));
                parts.push(list("BYDAY", &ordinal_days(rng, 4)));
            }
            3 => {
                parts.push(months(rng));
                parts.push(list("BYDAY", &plain_days(rng)));
                parts.push(list("BYSETPOS", &set_positions(rng)));
            }
            4 => parts.push(list(
                "BYYEARDAY",
                &rng.subset(&["1", "32", "60", "100", "200", "365", "-1", "-100"]),
            )),
            _ => {
                parts.push(list(
                    "BYWEEKNO",
                    &rng.subset(&["1", "2", "10", "20", "26", "52", "-1"]),
                ));
                parts.push(list("BYDAY", &plain_days(rng)));
            }
        },
        "MONTHLY" => match rng.below(6) {
            0 => {}
            1 => parts.push(list("BYMONTHDAY", &month_days(rng, 31))),
            2 => {
                let max = if rng.chance(15) { 5 } else { 4 };
                parts.push(list("BYDAY", &ordinal_days(rng, max)));
            }
            3 => {
                parts.push(list("BYDAY", &plain_days(rng)));
                parts.push(list("BYSETPOS", &set_positions(rng)));
            }
            4 => {
                parts.push(list("BYDAY", &ordinal_days(rng, 4)));
                parts.push(months(rng));
            }
            _ => {
                parts.push(list("BYDAY", &plain_days(rng)));
                parts.push(list("BYMONTHDAY", &month_days(rng, 31)));
            }
        },
        "WEEKLY" => {
            if rng.chance(60) {
                parts.push(list("BYDAY", &plain_days(rng)));
            }
            if rng.chance(25) {
                parts.push(format!("WKST={}", rng.pick(&WEEKDAYS)));
            }
            if rng.chance(10) {
                parts.push(months(rng));
            }
        }
        "DAILY" => match rng.below(6) {
            0 | 1 => {}
            2 => parts.push(list("BYDAY", &plain_days(rng))),
            3 => parts.push(months(rng)),
            4 => parts.push(list("BYMONTHDAY", &month_days(rng, 31))),
            _ => {
                // Hours around the switches (0-3) are the interesting ones.
                parts.push(list(
                    "BYHOUR",
                    &rng.subset(&["0", "1", "2", "3", "9", "18", "23"]),
                ));
                if rng.chance(50) {
                    parts.push(list("BYMINUTE", &rng.subset(&["0", "15", "30", "45"])));
                }
            }
        },
        _ => match rng.below(3) {
            0 => interval = 1 + rng.below(6),
            1 => {
                interval = 1;
                parts.push(list(
                    "BYHOUR",
                    &rng.subset(&["0", "1", "2", "3", "12", "23"]),
                ));
            }
            _ => parts.push(list("BYDAY", &plain_days(rng))),
        },
    }
    if interval > 1 {
        parts.push(format!("INTERVAL={interval}"));
    }
    let hourly = freq == "HOURLY";
    match rng.below(100) {
        0..35 => parts.push(format!("COUNT={}", 1 + rng.below(60))),
        35..65 => {
            let days = if hourly {
                1 + rng.below(30)
            } else {
                1 + rng.below(900)
            };
            let until = starts_at
                + Duration::days(days as i64)
                + Duration::minutes(rng.below(1440) as i64 - 720);
            let until = until.max(starts_at);
            parts.push(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
        }
        _ => {}
    }
    // Order of the parts does not matter to either side.
    rng.shuffle(&mut parts[1..]);
    Some(parts.join(";"))
}

fn list(key: &str, values: &[String]) -> String {
    format!("{key}={}", values.join(","))
}

fn months(rng: &mut Rng) -> String {
    let all: Vec<String> = (1..=12).map(|m| m.to_string()).collect();
    list(
        "BYMONTH",
        &rng.subset(&all.iter().map(String::as_str).collect::<Vec<_>>()),
    )
}

/// Days of the month; with `max` 28 every month has them.
fn month_days(rng: &mut Rng, max: i64) -> Vec<String> {
    let days: Vec<String> = (1..=max).chain(-max..=-1).map(|d| d.to_string()).collect();
    let mut picked = Vec::new();
    for _ in 0..=rng.below(3) {
        picked.push(days[rng.below(days.len() as u64) as usize].clone());
    }
    picked.sort();
    picked.dedup();
    picked
}

fn plain_days(rng: &mut Rng) -> Vec<String> {
    rng.subset(&WEEKDAYS)
}

fn ordinal_days(rng: &mut Rng, max: i64) -> Vec<String> {
    let mut days = Vec::new();
    for _ in 0..=rng.below(2) {
        let n = 1 + rng.below(max as u64) as i64;
        let n = if rng.chance(30) { -n } else { n };
        let day = rng.pick(&WEEKDAYS);
        days.push(format!("{n}{day}"));
    }
    days.sort();
    days.dedup();
    days
}

fn set_positions(rng: &mut Rng) -> Vec<String> {
    let mut positions = rng.subset(&["1", "2", "3", "-1", "-2"]);
    positions.truncate(2);
    positions
}

fn text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// splitmix64: a fixed, dependency-free sequence, so the cases are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A non-empty subset, in the given order.
    fn subset(&mut self, items: &[&str]) -> Vec<String> {
        let keep = 1 + self.below(items.len().min(4) as u64);
        let mut picked: Vec<&str> = items
            .iter()
            .copied()
            .filter(|_| self.below(items.len() as u64) < keep)
            .collect();
        if picked.is_empty() {
            picked.push(self.pick(items));
        }
        picked.into_iter().map(str::to_owned).collect()
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}
