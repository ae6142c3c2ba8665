//! Every node of an in-process omap3isp instance under hostile ioctls: see mcemu::fuzzing::run.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcemu::fuzzing::run(data));
