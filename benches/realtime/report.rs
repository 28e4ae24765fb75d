//! Reporting helpers: percentiles, units, the machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Percentiles {
    pub(crate) p50: i64,
    pub(crate) p99: i64,
    pub(crate) p999: i64,
    pub(crate) max: i64,
}

impl Percentiles {
    pub(crate) fn of(mut samples_us: Vec<i64>) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        samples_us.sort_unstable();
        let at = |q: f64| samples_us[((samples_us.len() - 1) as f64 * q).round() as usize];
        Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples_us[samples_us.len() - 1],
        }
    }

    pub(crate) fn short(&self) -> String {
        format!(
            "{} / {} / {} / {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// `to - from` (ns) in whole microseconds, negative when `to` is earlier.
pub(crate) fn micros(to: u64, from: u64) -> i64 {
    (to as i64 - from as i64) / 1_000
}

pub(crate) fn ms(us: i64) -> String {
    if us.abs() < 10_000 {
        format!("{:.2} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.0} ms", us as f64 / 1_000.0)
    }
}

/// CPU microseconds per unit of work (a delivery, a message, a page).
pub(crate) fn per_unit(cpu_us: u64, n: u64) -> f64 {
    cpu_us as f64 / n.max(1) as f64
}

pub(crate) fn per(cpu_us: u64, n: u64) -> String {
    if n == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}", per_unit(cpu_us, n))
    }
}

pub(crate) fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "0".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), MemTotal {mem} kB, load average at start {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// What a run records about where and on what it ran.
pub(crate) struct Context {
    date: String,
    commit: String,
    machine: String,
    /// Busy cores of the whole machine over one second before the run.
    busy_before: f64,
    server_binary: String,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Context {
    pub(crate) fn capture() -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut commit = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
        if !command_output("git", &["-C", root, "status", "--porcelain"]).is_empty() {
            commit.push_str(" + uncommitted changes");
        }
        let busy = crate::server::machine_busy_us();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let busy_before = (crate::server::machine_busy_us() - busy) as f64 / 1e6;
        Self {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit,
            machine: machine(),
            busy_before,
            server_binary: std::env::var("GUILDHALL_BENCH_SERVER_BIN")
                .unwrap_or_else(|_| "this build's guildhall".to_owned()),
        }
    }

    fn quiet(&self) -> bool {
        self.busy_before < 0.1
    }
}

pub(crate) fn render(context: &Context, full: bool, sections: &[crate::Section]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Realtime suite ({}, commit {})\n\nCommand: `scripts/bench` (`cargo bench --bench realtime`{}).\n",
        context.date,
        context.commit,
        if full { "" } else { ", smoke scale" }
    );
    let _ = writeln!(md, "| setup | value |\n|---|---|");
    let _ = writeln!(md, "| machine | {} |", context.machine);
    let _ = writeln!(
        md,
        "| quiet box | {} (machine busy {:.2} cores in the second before the run) |",
        if context.quiet() { "yes" } else { "no" },
        context.busy_before
    );
    let _ = writeln!(
        md,
        "| server | {} ({} profile), one child process per scenario, rate limits off |",
        context.server_binary,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        md,
        "| load generator | this bench process on the same 2 cores, client read buffer {} B, loopback |",
        crate::READ_BUFFER
    );
    let scenarios: Vec<String> = sections
        .iter()
        .map(|s| format!("{} {:.0} s", s.name, s.seconds))
        .collect();
    let _ = writeln!(md, "| scenarios (wall time) | {} |\n", scenarios.join(", "));
    for section in sections {
        let _ = writeln!(md, "{}", section.markdown);
    }
    if let Ok(path) = std::env::var("GUILDHALL_BENCH_EXTRA") {
        let _ = writeln!(md, "{}", std::fs::read_to_string(path).unwrap_or_default());
    }
    let json: serde_json::Map<String, serde_json::Value> = sections
        .iter()
        .map(|s| (s.name.to_owned(), s.json.clone()))
        .collect();
    let _ = writeln!(
        md,
        "<details><summary>JSON</summary>\n\n```json\n{}\n```\n\n</details>\n",
        serde_json::to_string_pretty(&serde_json::json!({
            "date": context.date,
            "commit": context.commit,
            "machine": context.machine,
            "quiet": context.quiet(),
            "full": full,
            "scenarios": json,
        }))
        .unwrap_or_default()
    );
    md
}

/// Puts `report` above the newest section of BENCHMARKS.md (sections are kept newest first).
pub(crate) fn insert_into_benchmarks(report: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".to_owned());
    let at = text.find("\n## ").map_or(text.len(), |i| i + 1);
    let updated = format!("{}{report}\n{}", &text[..at], &text[at..]);
    std::fs::write(&path, updated).expect("BENCHMARKS.md is writable");
    eprintln!("bench: report inserted into {}", path.display());
}
