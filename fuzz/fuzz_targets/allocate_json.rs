#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| allocator_fuzz::allocate_json(data));
