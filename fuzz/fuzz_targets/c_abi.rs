#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| allocator_fuzz::c_abi(data));
