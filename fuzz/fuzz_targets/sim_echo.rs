//! `examples/echo_server.rs` on the simulator, driven by fake clients whose actions are
//! decoded from the input: every byte sent comes back once and in order unless the client
//! reset or closed, and no connection or handle is left behind. The scenario lives in
//! tests/fuzz_cases/sim_echo.rs, shared with the tests that replay what this target found.

#![no_main]

#[path = "../../tests/fuzz_cases/sim_echo.rs"]
mod sim_echo;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sim_echo::check(data));
