//! The live progress line of a produce run (indicatif, on stderr; hidden
//! when stderr is not a terminal): elapsed time, msgs/s and MB/s over the
//! last second, and the produce-ack p99 so far. Counts only measured
//! messages (after the warm-up).

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_millis(500);

struct Shared {
    messages: AtomicU64,
    bytes: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
    done: AtomicBool,
}

#[derive(Clone)]
pub struct Progress {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Progress {
    pub fn start(acks: i16, measure_from: Instant) -> Progress {
        let shared = Arc::new(Shared {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds"),
            ),
            done: AtomicBool::new(false),
        });
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} acks={prefix} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(crate::report::acks_name(acks));
        let watched = shared.clone();
        let thread = std::thread::spawn(move || {
            let (mut last_messages, mut last_bytes, mut last_at) = (0, 0, Instant::now());
            while !watched.done.load(Ordering::Relaxed) {
                std::thread::sleep(REFRESH);
                let now = Instant::now();
                let (messages, bytes) = (
                    watched.messages.load(Ordering::Relaxed),
                    watched.bytes.load(Ordering::Relaxed),
                );
                let seconds = (now - last_at).as_secs_f64().max(1e-9);
                let p99 = watched
                    .latency_us
                    .lock()
                    .map(|h| {
                        if h.is_empty() {
                            0.0
                        } else {
                            h.value_at_percentile(99.0) as f64 / 1000.0
                        }
                    })
                    .unwrap_or(0.0);
                let phase = if now < measure_from {
                    "warm-up"
                } else {
                    "measuring"
                };
                bar.set_message(format!(
                    "{phase}: {:.0} msgs/s, {:.1} MB/s, p99 {p99:.3} ms",
                    (messages - last_messages) as f64 / seconds,
                    (bytes - last_bytes) as f64 / seconds / 1e6,
                ));
                bar.tick();
                (last_messages, last_bytes, last_at) = (messages, bytes, now);
            }
            bar.finish_and_clear();
        });
        Progress {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    pub fn record(&self, messages: u64, bytes: u64, latencies_us: &[u64]) {
        self.shared.messages.fetch_add(messages, Ordering::Relaxed);
        self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
        if latencies_us.is_empty() {
            return;
        }
        if let Ok(mut histogram) = self.shared.latency_us.lock() {
            for latency in latencies_us {
                histogram.saturating_record(*latency);
            }
        }
    }

    pub fn finish(&self) {
        self.shared.done.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
