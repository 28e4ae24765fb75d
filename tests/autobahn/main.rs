//! WebSocket protocol compliance: Autobahn|Testsuite's `fuzzingclient` against an echo server
//! whose upgrade goes through the gateway's own settings (`realtime::configure_upgrade`, the
//! configured `ws_max_frame_bytes`). Fails on any FAILED case or any UNCLEAN/FAILED close;
//! NON-STRICT and INFORMATIONAL are reported, not failed.
//!
//! `scripts/autobahn` installs `wstest` (Python 2.7) and runs this; `scripts/autobahn --short`
//! runs a quick subset. Without `wstest` (env `GUILDHALL_WSTEST`, PATH, or
//! `~/.cache/guildhall/autobahn/bin/wstest`) it prints a skip line and passes.
//! `GUILDHALL_AUTOBAHN_CASES=1.*,2.*` picks cases; `GUILDHALL_AUTOBAHN_TIMEOUT_S` bounds the
//! run (default 1200). On failure the reports (HTML per case) are kept and their path printed.
//!
//! `harness = false`, but it answers libtest's `--list` so cargo-nextest can run it, and a
//! name filter that does not match (`cargo test auth::`) skips it.

mod echo;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use guildhall::Config;

const TEST_NAME: &str = "fuzzingclient";
const SKIP_LINE: &str = "autobahn: skipped (wstest not installed; run scripts/autobahn)";
/// Autobahn's largest messages (cases 9.1.6, 9.2.6).
const LARGEST_CASE_MESSAGE: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // libtest's terse listing; nothing is #[ignore]d.
        if !args.iter().any(|a| a == "--ignored") {
            println!("{TEST_NAME}: test");
        }
        return ExitCode::SUCCESS;
    }
    if !selected(&args) {
        println!("autobahn: filtered out");
        return ExitCode::SUCCESS;
    }
    let Some(wstest) = find_wstest() else {
        println!("{SKIP_LINE}");
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&wstest)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// libtest semantics: no name filter, or one that is a substring of the test's name
/// (`--exact`: equal to it).
fn selected(args: &[String]) -> bool {
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if matches!(
            arg.as_str(),
            "--test-threads" | "--format" | "--skip" | "--color" | "--logfile" | "-Z"
        ) {
            iter.next(); // the flag's value
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    filters.is_empty()
        || filters.iter().any(|f| {
            if exact {
                *f == TEST_NAME
            } else {
                TEST_NAME.contains(f)
            }
        })
}

fn find_wstest() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GUILDHALL_WSTEST").filter(|p| !p.is_empty()) {
        // Named explicitly: a wrong path is an error to see, not a skip (run() reports it).
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join("wstest"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cached = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cache/guildhall/autobahn/bin/wstest"));
    on_path.into_iter().chain(cached).find(|p| p.is_file())
}

/// The gateway's `ws_max_frame_bytes`: its default, or `GUILDHALL_WS_MAX_FRAME_BYTES`.
fn gateway_max_bytes() -> Result<usize, String> {
    let mut raw = BTreeMap::from([
        ("jwt_secret".to_owned(), "autobahn-".repeat(8)),
        (
            "database_url".to_owned(),
            "postgres://unused/unused".to_owned(),
        ),
    ]);
    guildhall::config::overlay_env(
        &mut raw,
        std::env::vars().filter(|(k, _)| k == "GUILDHALL_WS_MAX_FRAME_BYTES"),
    );
    Config::from_raw(&raw)
        .map(|c| c.messaging.ws_max_frame_bytes)
        .map_err(|e| e.to_string())
}

async fn run(wstest: &Path) -> Result<(), String> {
    let started = Instant::now();
    let max_bytes = gateway_max_bytes()?;
    let cases: Vec<String> = std::env::var("GUILDHALL_AUTOBAHN_CASES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let cases = if cases.is_empty() {
        vec!["*".to_owned()]
    } else {
        cases
    };
    // 12.* and 13.* are permessage-deflate, which the gateway does not negotiate (axum offers no
    // compression): Autobahn would only mark them UNIMPLEMENTED. 9.* sends messages up to 16 MiB,
    // which the gateway's limit (64 KiB by default) rightly refuses with 1009; the limit itself
    // is exercised by 1.1.6-1.1.8 and 1.2.6-1.2.8 (64 KiB - 1, 64 KiB, 64 KiB in 997-byte chunks).
    let mut exclude = vec!["12.*", "13.*"];
    if max_bytes < LARGEST_CASE_MESSAGE {
        exclude.push("9.*");
    }
    let timeout = Duration::from_secs(
        std::env::var("GUILDHALL_AUTOBAHN_TIMEOUT_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1200),
    );

    let work = std::env::temp_dir().join(format!(
        "guildhall-autobahn-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let outcome = fuzz(wstest, &work, max_bytes, &cases, &exclude, timeout).await;
    match &outcome {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&work);
            println!(
                "autobahn: 1 passed, 0 failed ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
        }
        Err(_) => eprintln!(
            "autobahn: reports and wstest.log kept in {} (open reports/index.html)",
            work.display()
        ),
    }
    outcome
}

async fn fuzz(
    wstest: &Path,
    work: &Path,
    max_bytes: usize,
    cases: &[String],
    exclude: &[&str],
    timeout: Duration,
) -> Result<(), String> {
    let server = echo::Server::start(max_bytes).await?;
    let outdir = work.join("reports");
    let spec = serde_json::json!({
        "outdir": outdir,
        "servers": [{ "agent": report::AGENT, "url": format!("ws://{}", server.addr) }],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    });
    let spec_path = work.join("fuzzingclient.json");
    std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
    println!(
        "autobahn: {} -m fuzzingclient against ws://{} (max message {max_bytes} bytes), cases {}, excluding {}",
        wstest.display(),
        server.addr,
        cases.join(","),
        exclude.join(","),
    );

    let log_path = work.join("wstest.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", wstest.display()))?;
    let status = tokio::time::timeout(timeout, child.wait()).await;
    server.stop().await;
    let status = match status {
        Ok(status) => status.map_err(|e| e.to_string())?,
        Err(_) => {
            print_tail(&log_path);
            return Err(format!("wstest still running after {timeout:?}"));
        }
    };
    if !status.success() {
        print_tail(&log_path);
        return Err(format!("wstest exited with {status}"));
    }
    report::check(&outdir)
}

fn print_tail(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last lines of {} ---", log.display());
    for line in &lines[lines.len().saturating_sub(30)..] {
        eprintln!("{line}");
    }
}
