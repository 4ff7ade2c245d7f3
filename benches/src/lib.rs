//! Shared pieces of micro's benchmarks: the echo service that the criterion benches and the
//! `loadgen` binary call, a plain-TCP echo server to compare it with, the publish → handler
//! measurements of the brokers, read and write turns under load, latency tallies, and CPU
//! time read from `/proc`.
//!
//! ```text
//! cargo bench -p benches --bench call
//! cargo run --release -p benches --bin loadgen -- [--quick] [--secs 0.5] [--pubsub-only]
//! ```

pub mod cpu;
pub mod process;
pub mod pubsub;
pub mod raw;
pub mod tally;
pub mod turns;

use bytes::Bytes;

/// Sends every request straight back.
///
/// The body is [`Bytes`], which bincode carries as one length-prefixed run rather than
/// element by element, so the benchmarks measure micro and not the codec's handling of
/// sequences.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

#[micro::service(name = "echo")]
impl Echo {
    /// Returns `body` unchanged.
    pub async fn echo(&self, body: Bytes) -> micro::Result<Bytes> {
        Ok(body)
    }
}

/// A body of `len` bytes in a repeating, non-zero pattern.
///
/// ```
/// assert_eq!(&benches::payload(3)[..], [0, 1, 2]);
/// ```
pub fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A size as the tables print it.
///
/// ```
/// assert_eq!(benches::size_name(16), "16 B");
/// assert_eq!(benches::size_name(1024), "1 KiB");
/// ```
pub fn size_name(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}
