//! Cooperative cancellation of a running operation.
//!
//! A [`CancelToken`] is a shared flag. The caller that wants to stop an
//! operation (the R package, when the user presses Ctrl-C) sets it from
//! another thread; the operation checks it before each request, between
//! the chunks of an upload or download and while it sleeps, and returns
//! [`Error::Interrupted`] once it is set. A request already waiting for
//! its response is not aborted: it finishes or times out first.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Longest time [`CancelToken::sleep`] goes without looking at the flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A flag shared by every clone; once set it stays set.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operations holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Returns [`Error::Interrupted`] when the token is set.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Sleeps for `duration`, waking every [`POLL_INTERVAL`] to return
    /// [`Error::Interrupted`] as soon as the token is set.
    pub fn sleep(&self, duration: Duration) -> Result<()> {
        let deadline = Instant::now() + duration;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            std::thread::sleep((deadline - now).min(POLL_INTERVAL));
        }
    }

    /// Wraps a reader so that reads fail once the token is set, which makes
    /// the HTTP client abort an upload streaming from it.
    pub fn reader<R: Read>(&self, inner: R) -> CancellableRead<R> {
        CancellableRead {
            inner,
            token: self.clone(),
        }
    }
}

/// A reader that fails with [`io::ErrorKind::Other`] once its token is set.
/// It does not use [`io::ErrorKind::Interrupted`], because `Read` callers
/// retry on that kind.
pub struct CancellableRead<R> {
    inner: R,
    token: CancelToken,
}

impl<R: Read> Read for CancellableRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.token.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Other, "the operation was interrupted"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(clone.check().is_ok());
        token.cancel();
        assert!(clone.is_cancelled());
        assert_eq!(clone.check().unwrap_err().kind(), "interrupted");
    }

    #[test]
    fn sleep_returns_early_when_cancelled() {
        let token = CancelToken::new();
        let setter = token.clone();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            setter.cancel();
        });
        let err = token.sleep(Duration::from_secs(60)).unwrap_err();
        handle.join().unwrap();
        assert_eq!(err.kind(), "interrupted");
    }

    #[test]
    fn reader_fails_after_cancel() {
        let token = CancelToken::new();
        let mut reader = token.reader(&b"abcdef"[..]);
        let mut buf = [0u8; 3];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        token.cancel();
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }
}
