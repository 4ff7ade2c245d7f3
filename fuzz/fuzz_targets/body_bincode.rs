//! A bincode request or reply body, decoded as representative handler types.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    micro::__fuzz::body(micro::codec::ContentType::Bincode, data)
});
