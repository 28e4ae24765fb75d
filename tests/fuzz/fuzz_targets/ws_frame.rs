//! WebSocket client frames; the properties are in `checks/ws_frame.rs`, shared with the
//! corpus replay in the test suite (tests/api/fuzz_corpus.rs).
#![no_main]

#[path = "../checks/ws_frame.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
