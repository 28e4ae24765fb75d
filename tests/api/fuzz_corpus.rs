//! The short smoke of the fuzz targets (tests/fuzz, `scripts/fuzz` runs them under libFuzzer):
//! each target's checks on every input of its committed corpus, then on deterministic
//! mutations of those inputs. A failure names the input, to add to the corpus once fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[path = "../fuzz/checks/json_bodies.rs"]
mod json_bodies;
#[path = "../fuzz/checks/ws_frame.rs"]
mod ws_frame;

/// Mutated inputs per target; `GUILDHALL_FUZZ_SMOKE_RUNS` raises it.
const DEFAULT_RUNS: usize = 20_000;

#[test]
fn json_bodies_corpus_and_mutations() {
    smoke("json_bodies", json_bodies::check);
}

#[test]
fn ws_frame_corpus_and_mutations() {
    smoke("ws_frame", ws_frame::check);
}

fn smoke(target: &str, check: fn(&[u8])) {
    let corpus = load_corpus(target);
    assert!(
        corpus.len() >= 10,
        "{target}: the committed corpus is missing"
    );
    for input in &corpus {
        run(target, check, input);
    }
    let runs = std::env::var("GUILDHALL_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..runs {
        let input = mutate(&corpus, &mut rng);
        run(target, check, &input);
    }
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn run(target: &str, check: fn(&[u8]), input: &[u8]) {
    assert!(
        catch_unwind(AssertUnwindSafe(|| check(input))).is_ok(),
        "{target}: a check failed on {:?} (bytes {input:?})",
        String::from_utf8_lossy(input)
    );
}

/// Tokens that move a JSON decoder across its edges.
const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-0",
    "1e400",
    "3.0",
    "-1",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\"",
    "{}",
    "[]",
    "\"type\"",
];

fn mutate(corpus: &[Vec<u8>], rng: &mut XorShift) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 if at < input.len() => {
                input.remove(at);
            }
            2 => input.insert(at, rng.next() as u8),
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
        }
    }
    input
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
