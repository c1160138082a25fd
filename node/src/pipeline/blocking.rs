//! Runs a blocking [`WriteSink`] as a [`super::Sink`]: on a thread of its own, one message at a
//! time, in order. A durable sink that fails to write tries the same message again, with
//! backoff, until it works or the node stops (it is not acknowledged meanwhile, and `/health`
//! says the sink cannot write); a live sink drops it, counted. A [`WriteSink`] leaves nothing
//! of a failed write behind, so the retry writes the message once.

use std::time::Duration;

use super::input::{DropReason, FailReason, SinkFuture, SinkInput, WriteSink};

/// How long without a message before the sink is told it is idle.
const IDLE: Duration = Duration::from_millis(200);
/// Backoff between attempts to write a message again: short at most, since a local disk that
/// got space back should be written to again soon, and a failed attempt costs little.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs `sink` on `input` until the node stops.
pub fn run<S: WriteSink>(mut sink: S, mut input: SinkInput) -> SinkFuture {
    Box::pin(async move {
        let runtime = tokio::runtime::Handle::current();
        let name = input.name().to_string();
        let worker = tokio::task::spawn_blocking(move || {
            loop {
                let Some(item) = runtime.block_on(input.next_within(IDLE)) else {
                    if input.is_stopping() {
                        break;
                    }
                    if let Err(err) = sink.idle() {
                        input.failed(&err.to_string());
                    }
                    continue;
                };
                let mut wait = RETRY_FIRST;
                loop {
                    match sink.write(&item.delivered) {
                        Ok(()) => {
                            input.delivered(std::slice::from_ref(&item));
                            break;
                        }
                        Err(err) if input.durable() => {
                            input.cannot_write(&format!(
                                "write failed (trying again in {wait:?}): {err}"
                            ));
                            input.retried(std::slice::from_ref(&item), FailReason::WriteFailed);
                            let stopping = runtime.block_on(async {
                                tokio::select! {
                                    _ = tokio::time::sleep(wait) => false,
                                    _ = input.stopping() => true,
                                }
                            });
                            if stopping {
                                // Not acknowledged: the publisher keeps it.
                                return finish(sink, &input);
                            }
                            wait = (wait * 2).min(RETRY_MAX);
                        }
                        Err(err) => {
                            input.failed(&err.to_string());
                            input.dropped(std::slice::from_ref(&item), DropReason::WriteFailed);
                            break;
                        }
                    }
                }
            }
            finish(sink, &input)
        });
        if worker.await.is_err() {
            tracing::error!(sink = %name, "the sink's thread panicked");
        }
    })
}

fn finish<S: WriteSink>(mut sink: S, input: &SinkInput) {
    if let Err(err) = sink.finish() {
        input.failed(&format!("finishing failed: {err}"));
    }
}
