//! CPU time used by a process, from `/proc/<pid>/stat` (Linux only).

use std::io;
use std::ops::Sub;
use std::time::Duration;

/// Clock ticks per second in `/proc` times. Linux fixes this `USER_HZ` at 100 for user space
/// on every mainstream architecture, whatever the kernel's internal tick rate.
const TICKS_PER_SEC: u64 = 100;

/// CPU time of this process and of one other (the server), taken at the same moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// User plus system time of this process, all threads.
    pub client: Duration,
    /// User plus system time of the other process, all threads.
    pub server: Duration,
}

impl Sample {
    /// Reads both processes' times now.
    ///
    /// # Errors
    /// When either `stat` file cannot be read or parsed (not Linux, or `server` has exited).
    pub fn now(server: u32) -> io::Result<Self> {
        Ok(Self {
            client: read("/proc/self/stat")?,
            server: read(&format!("/proc/{server}/stat"))?,
        })
    }

    /// Client plus server time.
    pub fn total(&self) -> Duration {
        self.client + self.server
    }
}

impl Sub for Sample {
    type Output = Sample;

    fn sub(self, earlier: Sample) -> Sample {
        Sample {
            client: self.client.saturating_sub(earlier.client),
            server: self.server.saturating_sub(earlier.server),
        }
    }
}

fn read(path: &str) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(path)?;
    let ticks = parse_ticks(&stat).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {path}"))
    })?;
    Ok(Duration::from_micros(ticks * (1_000_000 / TICKS_PER_SEC)))
}

/// `utime + stime` (fields 14 and 15) of a `stat` line.
fn parse_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; fields after its closing
    // parenthesis start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_command_names_do_not_shift_the_fields() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0";
        assert_eq!(parse_ticks(stat), Some(42));
    }

    #[test]
    fn this_process_has_a_time() {
        assert!(read("/proc/self/stat").is_ok());
    }
}
