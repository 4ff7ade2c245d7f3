//! Entry points for the fuzz targets in `fuzz/`. Not public API: no stability promise, and
//! hidden from the docs.
//!
//! Each function feeds bytes to a decoder exactly as the network path does and ignores the
//! outcome: a fuzz target only looks for panics, aborts, hangs and runaway allocations.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::Payload;
use crate::codec::ContentType;
use crate::wire::Frame;

/// One frame without its length prefix, as the frame reader hands it over.
pub fn frame(data: &[u8]) {
    let _ = Frame::decode(Bytes::copy_from_slice(data));
}

/// A byte stream split into frames and decoded, fed in chunks of `chunk` bytes, as a
/// connection reads it (length prefixes, partial frames, oversized announcements).
pub fn stream(data: &[u8], chunk: usize, max_frame: usize) {
    let mut reader = crate::framed::fuzz_reader(max_frame);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match reader(&mut buf) {
                Ok(Some(frame)) => {
                    let _ = Frame::decode(frame.freeze());
                }
                Ok(None) => break,
                Err(()) => return,
            }
        }
    }
}

/// A struct of the shapes handlers take: nested containers, options, enums, bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Representative {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: HashMap<String, Vec<i64>>,
    nested: Option<Box<Inner>>,
    kind: Kind,
    blob: Bytes,
    wide: u128,
    ordered: BTreeMap<u32, (bool, char)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    values: Vec<f64>,
    pairs: Vec<(u16, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Kind {
    Unit,
    Tuple(u8, String),
    Struct { a: Vec<u32>, b: Option<String> },
}

/// A recursive type, the shape of a syntax tree: a body nests it as deep as it likes, and the
/// decoder must refuse rather than overflow its stack.
#[derive(Debug, Serialize, Deserialize)]
enum Tree {
    Leaf(i64),
    Neg(Box<Tree>),
    Node {
        children: Vec<Tree>,
        next: Option<Box<Tree>>,
    },
}

/// A recursion with no brackets in JSON and one byte a level in bincode.
#[derive(Debug, Serialize, Deserialize)]
struct Chain(Option<Box<Chain>>);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Empty {}

/// A body in `content_type`, decoded as the server decodes a request (and the client a
/// reply): through [`Payload::decode`], as each of several representative types, including
/// recursive ones and sequences of zero-sized elements (which cost time, not bytes).
pub fn body(content_type: ContentType, data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let p = || Payload::encoded(content_type, bytes.clone());
    let _ = p().decode::<String>();
    let _ = p().decode::<Vec<u8>>();
    let _ = p().decode::<Vec<String>>();
    let _ = p().decode::<HashMap<String, Vec<u64>>>();
    let _ = p().decode::<(u8, Option<String>, Vec<(u32, u64)>)>();
    let _ = p().decode::<Representative>();
    let _ = p().decode::<crate::Error>();
    let _ = p().decode::<crate::registry::Service>();
    let _ = p().decode::<Tree>();
    let _ = p().decode::<Chain>();
    let _ = p().decode::<Vec<()>>();
    let _ = p().decode::<Vec<Vec<Empty>>>();
    let _ = p().decode::<BTreeMap<(), Empty>>();
}

/// A registry record as every backend stores it: a local entry file (the same shape as a
/// NATS KV value), and a bare service record (an etcd value).
pub fn registry_record(data: &[u8]) {
    let _ = crate::registry::local::parse_entry(data);
    let _ = serde_json::from_slice::<crate::registry::Service>(data);
}

/// A delivery to the embedded broker's inbox, in both codecs, as the inbox decodes it.
pub fn broker_delivery(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    for ct in [ContentType::Bincode, ContentType::Json] {
        let _ = crate::broker::embedded::decode_delivery(Payload::encoded(ct, bytes.clone()));
    }
    let _ = serde_json::from_slice::<crate::broker::Message>(data);
}
