//! Runs the client's blocking HTTP calls off the async runtime.
//!
//! With the `tokio` feature and a tokio runtime current (inside a task, or inside
//! `tokio::task::spawn_blocking`), the call runs on the runtime's blocking pool and the caller's
//! task waits without holding its worker thread, so other tasks keep running. Otherwise (no
//! runtime, as on a plain thread driving diesel) it runs inline on the calling thread, which is
//! already allowed to block.

use crate::Result;

/// The result of `call`, run where blocking is harmless.
///
/// # Panics
///
/// Resumes a panic of `call` in the caller.
pub(super) async fn off_runtime<T, F>(operation: &'static str, call: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return match handle.spawn_blocking(call).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nothing ran, so trying again later is safe.
            Err(e) => Err(crate::Error::Store {
                operation,
                retryable: true,
                source: format!("the registry call was cancelled: {e}").into(),
            }),
        };
    }
    let _ = operation;
    call()
}
