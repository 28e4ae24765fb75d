//! Scenario (ii): fan-out A, B and C against Guildhall and the bare reference, median of runs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Section;
use crate::api::Api;
use crate::bare::Bare;
use crate::db::{create_database, drop_database};
use crate::fanout::{Fanout, RateResult, Shape, Target};
use crate::report::{counts, ms, per_unit};
use crate::server::Server;
use serde_json::{Value, json};

/// One fan-out shape and the total send rates (messages/s over all rooms) it runs at.
struct Case {
    label: &'static str,
    title: &'static str,
    shape: Shape,
    rates: &'static [u32],
    run: Duration,
}

const fn shape(rooms: usize, members_per_room: usize, receivers_per_room: usize) -> Shape {
    Shape {
        rooms,
        members_per_room,
        receivers_per_room,
    }
}

const FULL: [Case; 3] = [
    Case {
        label: "a",
        title: "A: 10 rooms × 100 connections, 10 senders",
        shape: shape(10, 20, 100),
        rates: &[200, 500, 1_000],
        run: Duration::from_secs(10),
    },
    Case {
        label: "b",
        title: "B: one hot room of 100 connections",
        shape: shape(1, 20, 100),
        rates: &[500],
        run: Duration::from_secs(10),
    },
    Case {
        label: "c",
        title: "C: one room of 10,000 connections (100 member accounts × 100 sessions), burst",
        shape: shape(1, 100, 10_000),
        rates: &[10],
        run: Duration::from_secs(1),
    },
];

const SMOKE: [Case; 3] = [
    Case {
        label: "a",
        title: "A (smoke)",
        shape: shape(2, 2, 4),
        rates: &[40],
        run: Duration::from_secs(1),
    },
    Case {
        label: "b",
        title: "B (smoke)",
        shape: shape(1, 2, 4),
        rates: &[20],
        run: Duration::from_secs(1),
    },
    Case {
        label: "c",
        title: "C (smoke)",
        shape: shape(1, 2, 20),
        rates: &[5],
        run: Duration::from_secs(1),
    },
];

/// Medians over the runs of one case, rate and target.
#[derive(Debug, Clone)]
struct Row {
    case: &'static str,
    target: &'static str,
    rate: u32,
    deliveries_per_s: u64,
    runs: usize,
    sustained: usize,
    lost: u64,
    problems: Vec<String>,
    delivered_per_s: f64,
    p50: i64,
    p99: i64,
    p999: i64,
    max: i64,
    server_us: f64,
    client_us: f64,
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    values[values.len() / 2]
}

fn row(case: &Case, target: &'static str, rate: u32, results: &[RateResult]) -> Row {
    let of = |f: fn(&RateResult) -> i64| median(results.iter().map(f).collect());
    Row {
        case: case.label,
        target,
        rate,
        deliveries_per_s: u64::from(rate) * case.shape.receivers_per_room as u64,
        runs: results.len(),
        sustained: results.iter().filter(|r| r.sustained).count(),
        lost: results.iter().map(|r| r.lost).sum(),
        problems: results.iter().flat_map(problems).collect(),
        delivered_per_s: median(results.iter().map(|r| r.delivery_rate).collect()),
        p50: of(|r| r.latency.p50),
        p99: of(|r| r.latency.p99),
        p999: of(|r| r.latency.p999),
        max: of(|r| r.latency.max),
        server_us: median(
            results
                .iter()
                .map(|r| per_unit(r.cpu.server, r.delivered))
                .collect(),
        ),
        client_us: median(
            results
                .iter()
                .map(|r| per_unit(r.cpu.client, r.delivered))
                .collect(),
        ),
    }
}

/// What kept a run from counting as sustained, in words.
fn problems(r: &RateResult) -> Vec<String> {
    let disconnects: u64 = r.disconnects.values().sum();
    [
        (!r.send_errors.is_empty()).then(|| format!("send errors: {}", counts(&r.send_errors))),
        (r.acked != r.sent).then(|| format!("sent {} acked {}", r.sent, r.acked)),
        (r.lost > 0).then(|| format!("{} lost", r.lost)),
        (r.extra > 0).then(|| format!("{} extra", r.extra)),
        (r.slow_consumers > 0.0).then(|| format!("{} slow-consumer cut-offs", r.slow_consumers)),
        (r.disorder > 0).then(|| format!("{} out-of-order", r.disorder)),
        (disconnects > 0).then(|| format!("disconnects: {}", counts(&r.disconnects))),
        (r.send_rate < 0.97 * f64::from(r.target))
            .then(|| format!("sent only {:.0} msg/s", r.send_rate)),
        (r.tail >= Duration::from_secs(1))
            .then(|| format!("drained {} ms after the last send", r.tail.as_millis())),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every case at every rate, `runs` times, on one target.
async fn measure(target: Target<'_>, cases: &[Case], runs: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for case in cases {
        let mut fanout = Fanout::setup(target, case.shape, case.label).await;
        for &rate in case.rates {
            let mut results = Vec::with_capacity(runs);
            for _ in 0..runs {
                fanout.revive(target).await;
                results.push(fanout.run(target, rate, case.run).await);
            }
            rows.push(row(case, target.name(), rate, &results));
        }
        fanout.stop.cancel();
        // Let the closes reach the server before the next shape connects.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    rows
}

pub(crate) async fn run(full: bool) -> Section {
    let (cases, runs) = if full { (&FULL, 3) } else { (&SMOKE, 1) };
    let database = create_database().await;
    let server = Server::start(&database).await;
    let api = Api::new(server.addr);
    let guildhall = measure(
        Target::Guildhall {
            api: &api,
            server: &server,
        },
        cases,
        runs,
    )
    .await;
    let (exit, notable) = server.stop().await;
    drop_database(&database).await;
    let bare = Bare::start().await;
    let reference = measure(Target::Bare(&bare), cases, runs).await;
    bare.stop().await;
    render(cases, runs, &guildhall, &reference, &exit, &notable)
}

fn render(
    cases: &[Case],
    runs: usize,
    guildhall: &[Row],
    bare: &[Row],
    exit: &str,
    notable: &[String],
) -> Section {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Fan-out\n\nEach row: median of {runs} runs (lost: the sum over runs). Latency = send frame written -> \
         `message.created` read, so Guildhall's includes the durable commit; bare stores nothing. \
         Server CPU from /proc/<pid>/stat of the server process alone. Ratio = Guildhall / bare. For C, max is the time until the last recipient had the slowest message.\n"
    );
    for case in cases {
        let _ = writeln!(md, "- {}", case.title);
    }
    let _ = writeln!(
        md,
        "\n| case | msg/s (deliveries/s) | server | delivered/s | lost | e2e p50 / p99 / p99.9 / max | server CPU µs/delivery | client CPU µs/delivery | sustained | ratio CPU / p99 |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    for (g, b) in guildhall.iter().zip(bare) {
        for r in [g, b] {
            let ratio = if r.target == "bare" || b.server_us <= 0.0 || b.p99 <= 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} / {:.2}",
                    r.server_us / b.server_us.max(1e-9),
                    r.p99 as f64 / b.p99.max(1) as f64
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} ({}) | {} | {:.0} | {} | {} / {} / {} / {} | {:.2} | {:.2} | {}/{} | {ratio} |",
                r.case.to_uppercase(),
                r.rate,
                r.deliveries_per_s,
                r.target,
                r.delivered_per_s,
                r.lost,
                ms(r.p50),
                ms(r.p99),
                ms(r.p999),
                ms(r.max),
                r.server_us,
                r.client_us,
                r.sustained,
                r.runs,
            );
            json_rows.push(row_json(r));
        }
    }
    for r in guildhall.iter().chain(bare) {
        if !r.problems.is_empty() {
            let mut problems = r.problems.clone();
            problems.dedup();
            let _ = writeln!(
                md,
                "\n- {} {} at {} msg/s: {}",
                r.target,
                r.case.to_uppercase(),
                r.rate,
                problems.join("; ")
            );
        }
    }
    let _ = writeln!(
        md,
        "\nGuildhall exit after SIGTERM: {exit}; {} WARN/ERROR log lines",
        notable.len()
    );
    for line in notable.iter().take(5) {
        let _ = writeln!(md, "    {line}");
    }
    Section {
        name: "fanout",
        markdown: md,
        seconds: 0.0,
        json: json!({ "runs": runs, "rows": json_rows }),
    }
}

fn row_json(r: &Row) -> Value {
    json!({
        "case": r.case,
        "server": r.target,
        "msgs_per_s": r.rate,
        "deliveries_per_s_target": r.deliveries_per_s,
        "delivered_per_s": r.delivered_per_s.round(),
        "lost": r.lost,
        "p50_us": r.p50,
        "p99_us": r.p99,
        "p999_us": r.p999,
        "max_us": r.max,
        "server_cpu_us_per_delivery": (r.server_us * 100.0).round() / 100.0,
        "client_cpu_us_per_delivery": (r.client_us * 100.0).round() / 100.0,
        "sustained_runs": r.sustained,
        "runs": r.runs,
    })
}
