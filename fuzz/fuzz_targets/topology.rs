//! Topology files (TOML): see topology::fuzz.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| topology::fuzz(data));
