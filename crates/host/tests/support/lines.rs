//! Reading a child process's output line by line, bounded in time: the
//! host, the demo server and the proxies print when they are ready.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

/// Takes lines from `lines` until `wanted` returns a value, before
/// `deadline`. The error says whether time ran out or the process's output
/// ended (it exited) first.
pub fn read_lines_until<T>(
    lines: &Receiver<String>,
    deadline: Instant,
    mut wanted: impl FnMut(String) -> Option<T>,
) -> Result<T, RecvTimeoutError> {
    loop {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        if let Some(found) = wanted(line) {
            return Ok(found);
        }
    }
}
