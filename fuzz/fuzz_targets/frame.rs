//! One frame (request, reply, error, go away) without its length prefix.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| micro::__fuzz::frame(data));
