//! Decoding request bodies as a handler does, through `Payload::decode`: the 16-byte echo
//! body, a typical struct with nested containers, a list of 1,000 of them, and the same
//! struct in JSON. What every call pays for the decoder's limits (allocation, nesting depth,
//! element count) shows here.
//!
//! ```text
//! cargo bench -p benches --bench codec
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use micro::Payload;
use micro::codec::ContentType;
use serde::{Deserialize, Serialize};

/// The shape of a typical request: strings, numbers, an enum, an option, nested containers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Consignment {
    id: String,
    description: String,
    weight: i32,
    containers: Vec<Container>,
    vessel: Option<String>,
    labels: HashMap<String, String>,
    state: State,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Container {
    customer_id: String,
    origin: String,
    user_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum State {
    Loading { port: String },
}

fn consignment(i: usize) -> Consignment {
    Consignment {
        id: format!("consignment-{i}"),
        description: "a consignment of the usual kind".into(),
        weight: 55_000,
        containers: (0..3)
            .map(|c| Container {
                customer_id: format!("cust-{c}"),
                origin: "Manchester, United Kingdom".into(),
                user_id: 1_000 + c,
            })
            .collect(),
        vessel: Some("vessel-001".into()),
        labels: [("priority".to_owned(), "high".to_owned())].into(),
        state: State::Loading {
            port: "Felixstowe".into(),
        },
    }
}

/// Not inlined, so that the benchmark loop around it compiles the same whatever the decoder
/// inlines: only the decoding differs between two builds.
#[inline(never)]
fn decode<T: serde::de::DeserializeOwned + 'static>(ct: ContentType, body: &Bytes) -> T {
    Payload::encoded(ct, body.clone())
        .decode::<T>()
        .expect("decodes")
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let bin = ContentType::Bincode;
    let echo = bin.encode(&benches::payload(16)).unwrap();
    group.bench_function("bincode_bytes_16B", |b| {
        b.iter(|| black_box(decode::<Bytes>(bin, black_box(&echo))))
    });
    let one = bin.encode(&consignment(0)).unwrap();
    group.bench_function("bincode_struct", |b| {
        b.iter(|| black_box(decode::<Consignment>(bin, black_box(&one))))
    });
    let many = bin
        .encode(&(0..1000).map(consignment).collect::<Vec<_>>())
        .unwrap();
    group.bench_function("bincode_1000_structs", |b| {
        b.iter(|| black_box(decode::<Vec<Consignment>>(bin, black_box(&many))))
    });
    let numbers = bin.encode(&(0..4096u64).collect::<Vec<_>>()).unwrap();
    group.bench_function("bincode_4096_u64", |b| {
        b.iter(|| black_box(decode::<Vec<u64>>(bin, black_box(&numbers))))
    });
    let json = ContentType::Json.encode(&consignment(0)).unwrap();
    group.bench_function("json_struct", |b| {
        b.iter(|| black_box(decode::<Consignment>(ContentType::Json, black_box(&json))))
    });
    group.finish();
}

// What `criterion_group!` and `criterion_main!` expand to, minus the undocumented `pub fn`
// that the workspace's `missing_docs` lint rejects.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    codec(&mut criterion);
    criterion.final_summary();
}
