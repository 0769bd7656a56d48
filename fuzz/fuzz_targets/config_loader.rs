#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebox_tests::fuzz::config_loader(data));
