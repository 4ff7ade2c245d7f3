//! A registry record as the local, NATS and etcd backends read it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| micro::__fuzz::registry_record(data));
