//! The live progress line of a produce run (indicatif, on stderr; hidden
//! when stderr is not a terminal): elapsed time, msgs/s and MB/s over the
//! last second, and the produce-ack p99 so far. Counts only measured
//! messages (after the warm-up). With a log path it also writes an
//! HdrHistogram interval log (`.hlog`, one histogram per interval, the
//! format HdrHistogram's HistogramLogProcessor and plotters read).

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
    /// Latencies since the last interval was logged.
    interval_us: Mutex<Histogram<u64>>,
    done: AtomicBool,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Clone)]
pub struct Progress {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Progress {
    pub fn start(acks: i16, measure_from: Instant, hlog: Option<std::path::PathBuf>) -> Progress {
        let shared = Arc::new(Shared {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency_us: Mutex::new(new_histogram()),
            interval_us: Mutex::new(new_histogram()),
            done: AtomicBool::new(false),
        });
        let log_file = hlog.and_then(|path| match std::fs::File::create(&path) {
            Ok(file) => Some(std::io::BufWriter::new(file)),
            Err(error) => {
                eprintln!("cannot write {}: {error}", path.display());
                None
            }
        });
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} acks={prefix} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(crate::report::acks_name(acks));
        let watched = shared.clone();
        let thread = std::thread::spawn(move || {
            use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
            use hdrhistogram::serialization::V2DeflateSerializer;
            let (mut last_messages, mut last_bytes, mut last_at) = (0, 0, Instant::now());
            let (base, base_instant) = (std::time::SystemTime::now(), last_at);
            let mut file = log_file;
            let mut serializer = V2DeflateSerializer::new();
            let mut log = file.as_mut().and_then(|file| {
                IntervalLogWriterBuilder::new()
                    .with_base_time(base)
                    .with_start_time(base)
                    .begin_log_with(file, &mut serializer)
                    .map_err(|e| eprintln!("interval log: {e}"))
                    .ok()
            });
            let mut log_interval = |from: Instant, to: Instant| {
                let interval = watched
                    .interval_us
                    .lock()
                    .map(|mut h| std::mem::replace(&mut *h, new_histogram()));
                if let (Some(writer), Ok(interval)) = (log.as_mut(), interval) {
                    let written = writer.write_histogram(
                        &interval,
                        from.saturating_duration_since(base_instant),
                        to.saturating_duration_since(from),
                        None,
                    );
                    if let Err(error) = written {
                        eprintln!("interval log: {error}");
                    }
                }
            };
            while !watched.done.load(Ordering::Relaxed) {
                std::thread::sleep(REFRESH);
                let now = Instant::now();
                log_interval(last_at, now);
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
            log_interval(last_at, Instant::now());
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
        for shared in [&self.shared.latency_us, &self.shared.interval_us] {
            if let Ok(mut histogram) = shared.lock() {
                for latency in latencies_us {
                    histogram.saturating_record(*latency);
                }
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
