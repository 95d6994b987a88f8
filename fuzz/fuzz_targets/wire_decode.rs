//! cargo-fuzz target: `checks::wire_decode` on every input (see `fuzz/checks.rs`).

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::wire_decode(data));
