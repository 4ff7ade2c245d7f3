//! Reading and writing frames on a stream: the piece client and server connections share.

use std::io;

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::{Decoder, FramedRead};

use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

/// Flush a batch once it reaches this size even if more frames are waiting.
const MAX_BATCH: usize = 256 * 1024;

/// Writes queued frames, coalescing whatever is queued into one write.
///
/// Ends when every sender is gone (after writing what they queued) or the stream fails.
pub(crate) async fn write_loop(mut io: WriteHalf<BoxIo>, rx: flume::Receiver<Outgoing>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Ok(first) = rx.recv_async().await {
        // Woken by the first frame, this task would otherwise run before the tasks that are
        // about to queue more (tokio runs a freshly woken task next): let them, so that a
        // burst leaves in one write instead of one write per frame.
        tokio::task::yield_now().await;
        first.encode(&mut buf);
        while buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(frame) => frame.encode(&mut buf),
                Err(_) => break,
            }
        }
        if let Err(e) = io.write_all(&buf).await {
            tracing::debug!("connection write failed: {e}");
            return;
        }
        buf.clear();
    }
    let _ = io.shutdown().await;
}

/// Why a connection stopped reading.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the stream.
    Closed,
    /// A frame longer than the limit: the stream cannot be resynchronised.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A frame that does not parse.
    Malformed(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Splits a stream into frames, reporting oversized ones with their length.
pub(crate) struct FrameReader {
    inner: FramedRead<ReadHalf<BoxIo>, LengthPrefixed>,
}

impl FrameReader {
    pub(crate) fn new(io: ReadHalf<BoxIo>, max_frame: usize) -> Self {
        let codec = LengthPrefixed { max: max_frame };
        Self {
            inner: FramedRead::with_capacity(io, codec, 16 * 1024),
        }
    }

    /// # Cancel safety
    /// Cancel safe: a partly read frame stays buffered.
    pub(crate) async fn next(&mut self) -> Result<Frame, ReadError> {
        match self.inner.next().await {
            None => Err(ReadError::Closed),
            Some(Err(e)) => Err(e),
            Some(Ok(bytes)) => {
                Frame::decode(bytes.freeze()).map_err(|e| ReadError::Malformed(e.to_string()))
            }
        }
    }
}

/// `u32` big-endian length, then that many bytes. Stateless between calls: the prefix is
/// only consumed together with the whole frame, so a frame arriving in pieces is re-read
/// from its head, and an oversized one is reported with its length before any is buffered.
struct LengthPrefixed {
    max: usize,
}

impl Decoder for LengthPrefixed {
    type Item = BytesMut;
    type Error = ReadError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, ReadError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = (&src[..4]).get_u32() as usize;
        if len > self.max {
            return Err(ReadError::TooLarge { len, max: self.max });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(len)))
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::ContentType;

    /// Regression: the size check once peeked at a "length" in the middle of a frame whose
    /// head had already been consumed, desynchronising the stream when a frame arrived in
    /// pieces. Feed frames split at every kind of point and expect them whole, in order.
    #[test]
    fn frames_split_at_any_point_decode_whole_and_in_order() {
        let mut stream = BytesMut::new();
        for id in 0..200u64 {
            Outgoing::Reply {
                id,
                content_type: ContentType::Bincode,
                body: Bytes::from(vec![id as u8; (id as usize * 37) % 5000]),
            }
            .encode(&mut stream);
        }
        let stream = stream.freeze();
        for step in [1, 3, 7, 64, 1000, 4093] {
            let mut codec = LengthPrefixed { max: 1 << 20 };
            let mut buf = BytesMut::new();
            let mut next = 0u64;
            for chunk in stream.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    match Frame::decode(frame.freeze()).unwrap() {
                        Frame::Reply { id, body, .. } => {
                            assert_eq!(id, next, "step {step}");
                            assert_eq!(body.len(), (id as usize * 37) % 5000);
                            next += 1;
                        }
                        other => panic!("step {step}: {other:?}"),
                    }
                }
            }
            assert_eq!(next, 200, "step {step}");
        }
    }

    #[test]
    fn an_oversized_frame_is_reported_with_its_length_before_it_is_buffered() {
        let mut codec = LengthPrefixed { max: 1024 };
        let mut buf = BytesMut::from(&5000u32.to_be_bytes()[..]);
        match codec.decode(&mut buf) {
            Err(ReadError::TooLarge {
                len: 5000,
                max: 1024,
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
