//! `http_hello`'s request framing and parser (examples/support/http.rs): the stream framed
//! whole, cut in two, and byte by byte gives the same requests, and no call consumes more
//! than it was given. The checks live in tests/fuzz_cases/http_request.rs, shared with the
//! tests that replay what this target found.

#![no_main]

#[path = "../../tests/fuzz_cases/http_request.rs"]
mod http_request;

libfuzzer_sys::fuzz_target!(|data: &[u8]| http_request::check(data));
