//! cargo-fuzz target: `checks::push_handler` on every input (see `fuzz/checks.rs`).

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::push_handler(data));
