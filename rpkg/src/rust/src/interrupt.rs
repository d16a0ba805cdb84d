//! Runs an operation on a worker thread while R's main thread watches for
//! Ctrl-C, so an upload, download or registration wait can be stopped.
//!
//! R's API may only be called from the main thread, and an R error or
//! interrupt must never long-jump through Rust frames. So the main thread
//! only polls `mlflowreg_interrupt_pending()` (in `interrupt.c`) between
//! short waits for the worker, and on an interrupt it sets the operation's
//! [`CancelToken`]. The worker stops at its next check and undoes what it
//! must (see `mlflowreg::pipeline::register_model`).

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use mlflowreg::cancel::CancelToken;
use mlflowreg::Error;

extern "C" {
    fn mlflowreg_interrupt_pending() -> std::os::raw::c_int;
}

/// How often the main thread looks for an interrupt while the worker runs.
const POLL: Duration = Duration::from_millis(50);

/// How long the main thread waits for the worker to stop after an
/// interrupt. A worker still waiting for a response then is left to finish
/// on its own (bounded by `MLFLOW_HTTP_REQUEST_TIMEOUT`) and to undo its
/// work, and R gets control back at once.
const GRACE: Duration = Duration::from_millis(750);

/// Runs `work` on a new thread and returns its result, or
/// [`Error::Interrupted`] when the user pressed Ctrl-C first. A result the
/// worker finished before it saw the interrupt is returned as it is.
///
/// Must be called from R's main thread. A panic in `work` is resumed here,
/// where extendr turns it into an R error.
pub(crate) fn run<T: Send + 'static>(
    cancel: CancelToken,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (sender, receiver) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("mlflowreg-call".into())
        .spawn(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(work));
            // The receiver is gone when R already returned after an interrupt.
            let _ = sender.send(outcome);
        })
        .map_err(|err| Error::Configuration(format!("starting a worker thread failed: {err}")))?;

    loop {
        match receiver.recv_timeout(POLL) {
            Ok(outcome) => return unwrap(outcome),
            Err(RecvTimeoutError::Timeout) => {
                // SAFETY: this runs on R's main thread, the only caller of run().
                if unsafe { mlflowreg_interrupt_pending() } != 0 {
                    cancel.cancel();
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Configuration("the worker thread ended without a result".into()))
            }
        }
    }
    match receiver.recv_timeout(GRACE) {
        Ok(outcome) => unwrap(outcome),
        Err(_) => Err(Error::Interrupted),
    }
}

fn unwrap<T>(outcome: std::thread::Result<Result<T, Error>>) -> Result<T, Error> {
    match outcome {
        Ok(result) => result,
        Err(payload) => panic::resume_unwind(payload),
    }
}
