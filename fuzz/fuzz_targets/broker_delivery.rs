//! A delivery to the embedded broker's inbox, in both codecs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| micro::__fuzz::broker_delivery(data));
