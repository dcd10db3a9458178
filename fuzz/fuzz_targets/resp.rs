//! mini_redis's RESP parser (examples/mini_redis/resp.rs): any bytes, any cut, small limits;
//! no panic, nothing taken twice or beyond the buffer, the same requests however the bytes
//! arrive. The checks live in tests/fuzz_cases/resp.rs, shared with the stable tests.

#![no_main]

#[path = "../../tests/fuzz_cases/resp.rs"]
mod resp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| resp::check(data));
