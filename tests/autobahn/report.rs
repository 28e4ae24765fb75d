//! Reading wstest's `index.json`: a summary by behavior, and the verdict.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub const AGENT: &str = "guildhall";

/// One case's entry in `<outdir>/index.json` (`{agent: {case id: entry}}`).
#[derive(Debug, Deserialize)]
struct Entry {
    behavior: String,
    #[serde(rename = "behaviorClose")]
    behavior_close: String,
    /// The per-case JSON report, in the same folder.
    reportfile: String,
}

/// The parts of a per-case report that explain a failure.
#[derive(Debug, Deserialize)]
struct CaseReport {
    #[serde(default)]
    description: String,
    #[serde(default)]
    result: String,
    #[serde(default, rename = "resultClose")]
    result_close: String,
}

/// Behaviors (and close behaviors) that pass: NON-STRICT (e.g. failing a bad UTF-8 fragment
/// late rather than at once) and INFORMATIONAL (the close code chosen) are allowed by RFC 6455.
/// FAILED and UNCLEAN (TCP dropped without a close handshake) are not.
fn passes(behavior: &str) -> bool {
    matches!(behavior, "OK" | "NON-STRICT" | "INFORMATIONAL")
}

pub fn check(outdir: &Path) -> Result<(), String> {
    let index_path = outdir.join("index.json");
    let text = std::fs::read_to_string(&index_path)
        .map_err(|e| format!("{}: {e}", index_path.display()))?;
    let mut index: BTreeMap<String, BTreeMap<String, Entry>> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let cases = index
        .remove(AGENT)
        .ok_or_else(|| format!("{}: no results for agent {AGENT}", index_path.display()))?;
    let mut ids: Vec<&String> = cases.keys().collect();
    ids.sort_by_key(|id| case_order(id));

    let mut behaviors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut closes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in &ids {
        let entry = &cases[*id];
        behaviors.entry(&entry.behavior).or_default().push(id);
        closes.entry(&entry.behavior_close).or_default().push(id);
    }
    println!("autobahn: {} cases", ids.len());
    for (label, counts) in [("behavior", &behaviors), ("behaviorClose", &closes)] {
        let line: Vec<String> = counts
            .iter()
            .map(|(b, ids)| format!("{b} {}", ids.len()))
            .collect();
        println!("autobahn: {label}: {}", line.join(", "));
    }
    for (label, counts) in [("behavior", &behaviors), ("behaviorClose", &closes)] {
        for (b, ids) in counts.iter().filter(|(b, _)| **b != "OK") {
            println!("autobahn: {label} {b}: {}", ids.join(" "));
        }
    }

    let bad: Vec<&String> = ids
        .iter()
        .copied()
        .filter(|id| {
            let entry = &cases[*id];
            !passes(&entry.behavior) || !passes(&entry.behavior_close)
        })
        .collect();
    if ids.is_empty() {
        return Err("no case ran (check GUILDHALL_AUTOBAHN_CASES)".to_owned());
    }
    if bad.is_empty() {
        return Ok(());
    }
    for id in &bad {
        let entry = &cases[*id];
        let detail = std::fs::read_to_string(outdir.join(&entry.reportfile))
            .ok()
            .and_then(|t| serde_json::from_str::<CaseReport>(&t).ok());
        eprintln!(
            "autobahn: case {id}: behavior {}, close {}",
            entry.behavior, entry.behavior_close
        );
        if let Some(d) = detail {
            eprintln!("    {}", d.description.replace('\n', " "));
            eprintln!("    result: {}", d.result);
            eprintln!("    close: {}", d.result_close);
        }
    }
    Err(format!(
        "{} of {} cases failed or closed uncleanly",
        bad.len(),
        ids.len()
    ))
}

/// "1.1.10" after "1.1.9".
fn case_order(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}
