//! Read and write turns under load: `&self` handlers that wait on a timer, alone and mixed
//! with `&mut self` handlers that wait too, on an actor running 64 reads at once against the
//! same actor limited to one (`reads = 1`, how every actor ran before turns).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tally::{Tally, Window};

/// The service name of the actor limited to one read at a time.
pub const SERIAL: &str = "turns-serial";
/// The service name of the actor with the default read limit.
pub const TURNS: &str = "turns";

/// A counter whose handlers wait on a tokio timer, as handlers wait on a database.
#[derive(Debug, Default)]
pub struct Waiter {
    writes: u64,
}

#[micro::service(name = "turns")]
impl Waiter {
    /// A read turn: waits `ms` milliseconds, then returns the count.
    pub async fn read(&self, ms: u64) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(self.writes)
    }

    /// A write turn: waits `ms` milliseconds alone, then counts itself.
    pub async fn write(&mut self, ms: u64) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.writes += 1;
        Ok(self.writes)
    }
}

/// Starts the two actors as two services on loopback; returns them and their addresses.
///
/// # Errors
/// When a service cannot start.
pub async fn serve() -> micro::Result<Vec<(micro::RunningService, &'static str)>> {
    let turns = micro::Service::new(TURNS)
        .address("127.0.0.1:0")
        .handle(Waiter::default())
        .start()
        .await?;
    let serial = micro::Service::new(SERIAL)
        .rename()
        .address("127.0.0.1:0")
        .reads(1)
        .handle(Waiter::default())
        .start()
        .await?;
    Ok(vec![(turns, TURNS), (serial, SERIAL)])
}

/// What one cell measured: reads and writes apart.
#[derive(Debug, Default)]
pub struct Mix {
    /// The read calls.
    pub reads: Tally,
    /// The write calls.
    pub writes: Tally,
}

impl Mix {
    /// Calls per second, reads and writes together, over `window`.
    pub fn rate(&self, window: &Window) -> f64 {
        (self.reads.calls + self.writes.calls) as f64 / window.length().as_secs_f64()
    }

    /// Failed calls of either kind.
    pub fn errors(&self) -> u64 {
        self.reads.errors + self.writes.errors
    }

    /// The first failure of either kind.
    pub fn first_error(&self) -> Option<&str> {
        self.reads
            .first_error
            .as_deref()
            .or(self.writes.first_error.as_deref())
    }
}

/// `callers` tasks over one connection to `service` at `addr`, each calling in a loop until
/// the window ends. Caller `i`'s `k`-th call is a write of `write_ms` when `(i + k) % 10 <
/// write_tenths`, else a read of `read_ms`.
pub async fn measure(
    addr: Arc<str>,
    service: &'static str,
    callers: usize,
    (read_ms, write_ms, write_tenths): (u64, u64, usize),
    window: Window,
) -> Mix {
    let client = micro::Client::builder().connections_per_node(1).build();
    let waiter = WaiterClient::with_service(client, service);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let (waiter, addr) = (waiter.clone(), addr.clone());
            tokio::spawn(async move {
                let mut mix = Mix::default();
                for k in 0.. {
                    if Instant::now() >= window.end {
                        break;
                    }
                    let write = (i + k) % 10 < write_tenths;
                    let sent = Instant::now();
                    let result = if write {
                        waiter.write(write_ms).node(&*addr).await
                    } else {
                        waiter.read(read_ms).node(&*addr).await
                    };
                    let tally = if write {
                        &mut mix.writes
                    } else {
                        &mut mix.reads
                    };
                    match result {
                        Ok(_) => tally.record_in(&window, sent, Instant::now()),
                        Err(e) => {
                            tally.error(e);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                mix
            })
        })
        .collect();
    let mut total = Mix::default();
    for task in tasks {
        match task.await {
            Ok(mix) => {
                total.reads.merge(mix.reads);
                total.writes.merge(mix.writes);
            }
            Err(e) => total.reads.error(e),
        }
    }
    total
}

/// The same callers awaiting the same timer in this process, without micro: what this machine's
/// timer and scheduler allow, the baseline the turns rows are compared with.
pub async fn timer_baseline(callers: usize, ms: u64, window: Window) -> Mix {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            tokio::spawn(async move {
                let mut tally = Tally::new();
                while Instant::now() < window.end {
                    let sent = Instant::now();
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    tally.record_in(&window, sent, Instant::now());
                }
                tally
            })
        })
        .collect();
    let mut total = Mix::default();
    for task in tasks {
        match task.await {
            Ok(tally) => total.reads.merge(tally),
            Err(e) => total.reads.error(e),
        }
    }
    total
}
