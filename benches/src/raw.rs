//! The baseline: frames echoed over plain tokio TCP, with none of micro's routing, codecs,
//! call ids or actors.
//!
//! A frame is a `u32` big-endian length, then that many bytes; the server writes each frame
//! back verbatim, in order.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::tally::{Tally, Window};

/// The largest frame either side accepts, so a corrupt length cannot allocate gigabytes.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// How long a reply may take before the baseline gives up on it, as micro's default timeout.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes above this size go out at once rather than waiting for more frames (as micro's
/// connection writer does).
const MAX_BATCH: usize = 256 * 1024;

/// Accepts connections on `listener` and echoes frames on each until its peer closes it.
///
/// # Errors
/// Only when accepting fails; errors on one connection end that connection alone.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = echo(stream).await;
        });
    }
}

async fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    let mut body = Vec::new();
    loop {
        let len = match read.read_u32().await {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        body.resize(checked_len(len)?, 0);
        read.read_exact(&mut body).await?;
        write.write_u32(len).await?;
        write.write_all(&body).await?;
        // Replies to pipelined requests already read go out together, in one write.
        if read.buffer().is_empty() {
            write.flush().await?;
        }
    }
}

fn checked_len(len: u32) -> io::Result<usize> {
    let len = len as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME}"),
        ));
    }
    Ok(len)
}

fn put_frame(buf: &mut BytesMut, payload: &[u8]) {
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
}

/// Reads one echoed frame into `scratch`, checking it is as long as what was sent.
async fn read_reply(
    read: &mut BufReader<OwnedReadHalf>,
    scratch: &mut Vec<u8>,
    expected: usize,
) -> io::Result<()> {
    let len = checked_len(read.read_u32().await?)?;
    if len != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("echo of {len} bytes for a {expected}-byte request"),
        ));
    }
    scratch.resize(len, 0);
    read.read_exact(scratch).await?;
    Ok(())
}

/// One connection making one call at a time, for latency.
#[derive(Debug)]
pub struct Conn {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    frame: BytesMut,
    scratch: Vec<u8>,
}

impl Conn {
    /// Connects to an echo server.
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Self {
            read: BufReader::with_capacity(64 * 1024, read),
            write,
            frame: BytesMut::new(),
            scratch: Vec::new(),
        })
    }

    /// Sends `payload` and waits for its echo, for at most [`REPLY_TIMEOUT`].
    ///
    /// # Errors
    /// When the connection fails, the echo differs in length, or it is late.
    pub async fn call(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame.clear();
        put_frame(&mut self.frame, payload);
        let call = async {
            self.write.write_all(&self.frame).await?;
            read_reply(&mut self.read, &mut self.scratch, payload.len()).await
        };
        tokio::time::timeout(REPLY_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }
}

/// Keeps `depth` requests outstanding on one new connection until `window` ends, then waits
/// for the last replies.
///
/// A writer task sends whenever a request slot is free, batching every free slot into one
/// write; a reader task matches replies to send times in order.
///
/// # Errors
/// When the connection cannot be made, fails, or a reply takes longer than
/// [`REPLY_TIMEOUT`] past the end of the window.
pub async fn pipeline(
    addr: SocketAddr,
    payload: Bytes,
    depth: usize,
    window: Window,
) -> io::Result<Tally> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let slots = Arc::new(Semaphore::new(depth.max(1)));
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_side(
        write,
        payload.clone(),
        slots.clone(),
        sent_tx,
        window.end,
    ));
    let reader = tokio::spawn(read_side(read, payload.len(), slots, sent_rx, window));
    let (wrote, tally) = (writer.await?, reader.await?);
    wrote?;
    tally
}

async fn write_side(
    mut write: OwnedWriteHalf,
    payload: Bytes,
    slots: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<Instant>,
    end: Instant,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(MAX_BATCH + payload.len() + 4);
    // Checked each turn: `timeout_at` only fires while the slot is awaited, and with a deep
    // pipeline a slot is often free at once.
    while Instant::now() < end {
        let Ok(Ok(permit)) = tokio::time::timeout_at(end.into(), slots.acquire()).await else {
            break;
        };
        permit.forget();
        put_frame(&mut buf, &payload);
        let mut frames = 1;
        while buf.len() < MAX_BATCH {
            let Ok(permit) = slots.try_acquire() else {
                break;
            };
            permit.forget();
            put_frame(&mut buf, &payload);
            frames += 1;
        }
        let now = Instant::now();
        // Queued before writing, so the reader always finds a send time for a reply.
        for _ in 0..frames {
            let _ = sent.send(now);
        }
        write.write_all(&buf).await?;
        buf.clear();
    }
    // Dropping `sent` tells the reader no more requests are coming.
    Ok(())
}

async fn read_side(
    read: OwnedReadHalf,
    expected: usize,
    slots: Arc<Semaphore>,
    mut sent: mpsc::UnboundedReceiver<Instant>,
    window: Window,
) -> io::Result<Tally> {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut scratch = Vec::new();
    let mut tally = Tally::new();
    let give_up = window.end + REPLY_TIMEOUT;
    while let Some(at) = sent.recv().await {
        tokio::time::timeout_at(
            give_up.into(),
            read_reply(&mut read, &mut scratch, expected),
        )
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?;
        tally.record_in(&window, at, Instant::now());
        slots.add_permits(1);
    }
    Ok(tally)
}
