//! Control-socket requests and node settings: see mcemu::fuzzing::control.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcemu::fuzzing::control(data));
