//! Raw /dev/cuse messages through the server to the loopback device: see cuse::fuzzing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cuse::fuzzing::run(data));
