//! The log's one background flusher. Three things want pending bytes
//! written without an appender waiting for them:
//!
//! - the flush policy after an append: at once under a durable policy or
//!   once `flush.messages` records are unflushed, else `flush.ms` later;
//! - write-behind under write caching: at once when a quarter of the log's
//!   write buffer is pending (`WRITE_BEHIND_FRACTION`), so an append rarely
//!   finds the buffer full and flushes in the foreground;
//! - the core's write-buffer bound: at once when an append on any log of
//!   the core waits for room (`CoreMemory::room_for`).
//!
//! Each asks `Log::request_flush` with its [`FlushReason`]; the log keeps
//! one due time (the earliest asked for) and at most one flusher task. The
//! task waits for the due time, clears it, flushes everything appended so
//! far through the group commit (`Log::flush_to`) and goes round again if
//! another flush was asked for meanwhile, or ends. A request earlier than
//! the due time wakes a waiting flusher, so a `flush.ms` timer never holds
//! back a flush that the message count, write-behind or the core wants now.
//!
//! Why no append is left unflushed: the due time is cleared and the log end
//! read in one step, with no await between, before the flush starts. An
//! append before that step is covered by the flush; one after it asks
//! again and finds no due time, so it sets one.

use super::Log;
use crate::commit::Listen;
use crate::error::StorageError;
use crate::limits::WRITE_BEHIND_FRACTION;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Why a background flush is asked for; each decides when it wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushReason {
    /// An append, under the flush policy (`flush.messages`, `flush.ms`).
    Policy,
    /// An append under write caching found the write buffer a quarter full.
    WriteBehind,
    /// The core's write buffer is full and an append waits for room.
    CoreWriteBuffer,
}

impl FlushReason {
    fn name(self) -> &'static str {
        match self {
            FlushReason::Policy => "flush policy",
            FlushReason::WriteBehind => "write-behind",
            FlushReason::CoreWriteBuffer => "core write buffer",
        }
    }
}

/// The flusher's state: when the next background flush is due and whether
/// the task that runs it exists. Plain data, decided without I/O.
#[derive(Debug, Default)]
pub(super) struct FlushScheduler {
    /// When the next background flush starts; None if none is asked for.
    due: Option<Instant>,
    /// The reason that set `due`.
    reason: Option<FlushReason>,
    /// The flusher task exists: it waits for `due` or flushes.
    task: bool,
    /// The flusher task is flushing.
    flushing: bool,
}

/// What a request needs done to the flusher task.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Requested {
    /// No task exists: start one.
    Start,
    /// The task waits for a later due time: wake it.
    Wake,
    /// The task will get to it: it is due as soon or sooner, or the task
    /// is flushing and looks again when done.
    Nothing,
}

/// The flusher task's next step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Flush everything appended so far.
    Flush(FlushReason),
    /// Nothing due before this.
    Wait(Instant),
    /// Nothing asked for: the task ends.
    End,
}

impl FlushScheduler {
    /// Asks for a background flush starting by `at`.
    pub(super) fn request(&mut self, at: Instant, reason: FlushReason) -> Requested {
        if self.due.is_some_and(|due| due <= at) {
            return Requested::Nothing;
        }
        self.due = Some(at);
        self.reason = Some(reason);
        if !self.task {
            self.task = true;
            Requested::Start
        } else if self.flushing {
            Requested::Nothing
        } else {
            Requested::Wake
        }
    }

    /// The task's next step at `now`; the task ends after `Step::End`.
    pub(super) fn next(&mut self, now: Instant) -> Step {
        self.flushing = false;
        match self.due {
            None => {
                self.task = false;
                Step::End
            }
            Some(due) if due > now => Step::Wait(due),
            Some(_) => {
                self.due = None;
                self.flushing = true;
                Step::Flush(self.reason.take().unwrap_or(FlushReason::Policy))
            }
        }
    }

    /// Ends the task (the log is closed or poisoned): nothing is due.
    pub(super) fn end(&mut self) {
        *self = FlushScheduler::default();
    }

    /// A background flush is running or due by `now`.
    pub(super) fn is_busy(&self, now: Instant) -> bool {
        self.flushing || self.due.is_some_and(|due| due <= now)
    }
}

impl Log {
    /// Asks the log's flusher for a background flush when `reason` wants
    /// one (see the module comment). Never waits.
    pub(crate) fn request_flush(&self, reason: FlushReason) {
        let requested = {
            let mut state = self.inner.state.borrow_mut();
            let unflushed = state.log_end_offset() - state.durable_offset;
            if unflushed <= 0 || state.poisoned.is_some() || state.closed {
                return;
            }
            let config = &state.config;
            let delay = match reason {
                FlushReason::Policy if config.is_durable() => Duration::ZERO,
                FlushReason::Policy if unflushed as u64 >= config.flush_messages => Duration::ZERO,
                // Neither bound is set: bytes reach the disk through
                // write-behind, a full write buffer, a roll or close.
                FlushReason::Policy if config.flush_ms == i64::MAX => return,
                FlushReason::Policy => Duration::from_millis(config.flush_ms.max(0) as u64),
                FlushReason::WriteBehind => {
                    let threshold = config.write_buffer_bytes_max / WRITE_BEHIND_FRACTION;
                    if state.active().pending_bytes() < threshold as u64 {
                        return;
                    }
                    Duration::ZERO
                }
                FlushReason::CoreWriteBuffer => Duration::ZERO,
            };
            let Some(at) = Instant::now().checked_add(delay) else {
                return; // further away than the clock reaches: never
            };
            state.flusher.request(at, reason)
        };
        match requested {
            Requested::Start => {
                glommio::spawn_local(self.clone().run_flusher()).detach();
            }
            Requested::Wake => self.inner.flusher_wake.notify_all(),
            Requested::Nothing => {}
        }
    }

    /// The flusher task: see the module comment.
    async fn run_flusher(self) {
        loop {
            let (step, end) = {
                let mut state = self.inner.state.borrow_mut();
                let step = if state.poisoned.is_some() || state.closed {
                    state.flusher.end();
                    Step::End
                } else {
                    state.flusher.next(Instant::now())
                };
                (step, state.log_end_offset())
            };
            match step {
                Step::Flush(reason) => match self.flush_to(end).await {
                    Ok(()) | Err(StorageError::Closed(_)) => {}
                    Err(error) => {
                        tracing::error!(dir = %self.inner.dir.display(), %error,
                            reason = reason.name(), "background flush failed");
                    }
                },
                Step::Wait(due) => {
                    // Not busy any more: `Log::idle` may look again.
                    self.inner.flushed.notify_all();
                    let woken = self.inner.flusher_wake.listen();
                    sleep_until_or(due, woken).await;
                }
                Step::End => {
                    self.inner.flushed.notify_all();
                    return;
                }
            }
        }
    }

    /// Wakes a flusher waiting for a later due time, so it sees that the
    /// log is closed or poisoned and ends (it holds the log while it waits).
    pub(super) fn wake_flusher(&self) {
        self.inner.flusher_wake.notify_all();
    }
}

/// Resolves at `due` or when `woken` does, whichever is first.
async fn sleep_until_or(due: Instant, woken: Listen<'_>) {
    let mut sleep = pin!(glommio::timer::sleep(
        due.saturating_duration_since(Instant::now())
    ));
    let mut woken = pin!(woken);
    poll_fn(|cx| {
        if woken.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ProducedBatch;
    use crate::config::LogConfig;
    use crate::log::LogOptions;

    fn later(now: Instant, ms: u64) -> Instant {
        now + Duration::from_millis(ms)
    }

    #[test]
    fn first_request_starts_the_task_and_a_later_one_changes_nothing() {
        let now = Instant::now();
        let mut flusher = FlushScheduler::default();
        assert_eq!(
            flusher.request(later(now, 10), FlushReason::Policy),
            Requested::Start
        );
        assert_eq!(
            flusher.request(later(now, 20), FlushReason::Policy),
            Requested::Nothing
        );
        assert_eq!(flusher.next(now), Step::Wait(later(now, 10)));
        assert!(!flusher.is_busy(now));
        assert!(flusher.is_busy(later(now, 10)));
    }

    #[test]
    fn earlier_request_wakes_a_waiting_task_and_wins() {
        let now = Instant::now();
        let mut flusher = FlushScheduler::default();
        flusher.request(later(now, 1000), FlushReason::Policy);
        assert_eq!(flusher.next(now), Step::Wait(later(now, 1000)));
        assert_eq!(
            flusher.request(now, FlushReason::CoreWriteBuffer),
            Requested::Wake
        );
        assert_eq!(flusher.next(now), Step::Flush(FlushReason::CoreWriteBuffer));
        assert!(flusher.is_busy(now));
        // The flush covered everything: the hour-away timer is gone too.
        assert_eq!(flusher.next(now), Step::End);
        assert!(!flusher.is_busy(later(now, 2000)));
    }

    #[test]
    fn request_during_a_flush_runs_after_it_in_the_same_task() {
        let now = Instant::now();
        let mut flusher = FlushScheduler::default();
        flusher.request(now, FlushReason::WriteBehind);
        assert_eq!(flusher.next(now), Step::Flush(FlushReason::WriteBehind));
        assert_eq!(
            flusher.request(now, FlushReason::Policy),
            Requested::Nothing
        );
        assert_eq!(flusher.next(now), Step::Flush(FlushReason::Policy));
        assert_eq!(flusher.next(now), Step::End);
        assert_eq!(
            flusher.request(now, FlushReason::Policy),
            Requested::Start,
            "an ended task is started again"
        );
    }

    #[test]
    fn end_forgets_what_was_due() {
        let now = Instant::now();
        let mut flusher = FlushScheduler::default();
        flusher.request(now, FlushReason::Policy);
        flusher.end();
        assert!(!flusher.is_busy(now));
        assert_eq!(flusher.request(now, FlushReason::Policy), Requested::Start);
    }

    /// The timer path end to end: no one flushes, the flusher does once
    /// `flush.ms` has passed. Waits on the log's flush event, not a clock.
    #[test]
    fn flush_ms_flushes_in_the_background_after_the_delay() {
        let executor = glommio::LocalExecutorBuilder::default()
            .io_memory(2 << 20)
            .make()
            .expect("glommio executor");
        executor.run(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                flush_messages: u64::MAX,
                flush_ms: 20,
                ..LogConfig::default()
            };
            let options = LogOptions {
                config,
                ..LogOptions::default()
            };
            let (log, _) = Log::open(dir.path(), options).await.expect("open");
            let before = Instant::now();
            let batch = crate::batch::build_batch(&[b"x"], 0);
            let batch = ProducedBatch::new(bytes::BytesMut::from(&batch[..])).expect("valid");
            log.append_unsynced(batch).await.expect("append");
            log.idle().await.expect("idle");
            loop {
                let flushed = log.inner.flushed.listen();
                if log.durable_end_offset() == 1 {
                    break;
                }
                flushed.await;
            }
            assert!(
                before.elapsed() >= Duration::from_millis(20),
                "not before flush.ms"
            );
            assert_eq!(log.stats().flushes, 1);
            // Each flush lands in one latency bucket.
            assert_eq!(log.stats().flush_latency.iter().sum::<u64>(), 1);
        });
    }
}
