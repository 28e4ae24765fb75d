//! Every JSON request body type; the properties are in `checks/json_bodies.rs`, shared with
//! the corpus replay in the test suite (tests/api/fuzz_corpus.rs).
#![no_main]

#[path = "../checks/json_bodies.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
