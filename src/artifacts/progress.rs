//! Transfer progress shared between the threads that move bytes and the
//! thread that reports them.
//!
//! Workers add to the counters as bytes leave or reach the disk, and a
//! reporter (the R progress bar, polled from R's main thread) reads
//! [`Progress::snapshot`]. Setting [`Progress::cancel`] makes the readers
//! wrapped by this module fail at their next call, so an upload stops
//! within one buffer of data, and no further file of a transfer starts.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one upload or download, in files and bytes.
#[derive(Debug, Default)]
pub struct Progress {
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
    cancelled: AtomicBool,
}

/// The counters of a [`Progress`] read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    pub total_files: u64,
    pub total_bytes: u64,
    pub done_files: u64,
    pub done_bytes: u64,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Progress::default())
    }

    /// Adds files and bytes to the expected totals.
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.total_files.fetch_add(files, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back bytes counted by an attempt that failed and will be retried.
    pub fn remove_bytes(&self, bytes: u64) {
        let _ = self
            .done_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |done| Some(done.saturating_sub(bytes)));
    }

    pub fn file_done(&self) {
        self.done_files.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks every transfer that uses this progress to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            done_files: self.done_files.load(Ordering::Relaxed),
            done_bytes: self.done_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Not [`io::ErrorKind::Interrupted`], which readers retry.
fn cancelled_error() -> io::Error {
    io::Error::other("the transfer was cancelled")
}

/// A reader that counts the bytes it returns into a [`Progress`] and into
/// a counter of its own (`attempt`), so that a failed attempt can take its
/// bytes back.
pub(crate) struct CountingReader<R> {
    pub inner: R,
    pub progress: Arc<Progress>,
    pub attempt: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.progress.is_cancelled() {
            return Err(cancelled_error());
        }
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        self.attempt.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_counts_and_stops_when_cancelled() {
        let progress = Progress::new();
        let attempt = Arc::new(AtomicU64::new(0));
        let mut reader = CountingReader {
            inner: &[7u8; 100][..],
            progress: progress.clone(),
            attempt: attempt.clone(),
        };
        let mut buffer = [0u8; 60];
        assert_eq!(reader.read(&mut buffer).unwrap(), 60);
        assert_eq!(progress.snapshot().done_bytes, 60);
        assert_eq!(attempt.load(Ordering::Relaxed), 60);

        progress.remove_bytes(attempt.load(Ordering::Relaxed));
        assert_eq!(progress.snapshot().done_bytes, 0);

        progress.cancel();
        let err = reader.read(&mut buffer).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }
}
