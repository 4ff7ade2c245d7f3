//! A connection's byte stream: length prefixes, partial and oversized frames, fed in chunks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    micro::__fuzz::stream(rest, usize::from(first % 64) + 1, 64 * 1024);
});
