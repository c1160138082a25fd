//! Waiting for SLIM to complete what it was asked (a publish, an invitation, a removal).

use std::sync::Arc;
use std::time::Duration;

use slim_bindings::{CompletionHandle, SlimError};

/// Waits at most `within` for `completion`; [`SlimError::Timeout`] after that. On tokio's
/// timer: the bindings' own timed wait puts each wait on futures-timer's global thread and wakes
/// that thread for it, 2–5 % of a node that waits once per frame (BENCHMARKS.md, note 23).
pub(crate) async fn completed(
    completion: Arc<CompletionHandle>,
    within: Duration,
) -> Result<(), SlimError> {
    tokio::time::timeout(within, completion.wait_async())
        .await
        .unwrap_or(Err(SlimError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completion resolved by `rx`'s sender.
    fn handle() -> (
        tokio::sync::oneshot::Sender<Result<(), slim_session::SessionError>>,
        Arc<CompletionHandle>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let completion = slim_session::CompletionHandle::from_oneshot_receiver(rx);
        (tx, Arc::new(CompletionHandle::from(completion)))
    }

    #[tokio::test]
    async fn a_completion_that_comes_in_time_is_ok() {
        let (tx, completion) = handle();
        tx.send(Ok(())).unwrap();
        completed(completion, Duration::from_secs(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_completion_that_does_not_come_in_time_is_a_timeout() {
        let (_tx, completion) = handle();
        let err = completed(completion, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(err, SlimError::Timeout), "{err:?}");
    }
}
