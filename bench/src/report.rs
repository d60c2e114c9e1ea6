//! The final table and the JSON report.

use crate::produce::{Options, RunResult};
use hdrhistogram::Histogram;

const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

pub fn acks_name(acks: i16) -> &'static str {
    match acks {
        0 => "0",
        1 => "1",
        _ => "all",
    }
}

fn ms(histogram: &Histogram<u64>, percentile: f64) -> f64 {
    histogram.value_at_percentile(percentile) as f64 / 1000.0
}

pub fn print_table(results: &[RunResult]) {
    println!(
        "{:>4} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11}",
        "acks",
        "msgs/s",
        "MB/s",
        "p50 ms",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "errors",
        "cpu us/msg"
    );
    for r in results {
        let latency: Vec<String> = if r.latency_us.is_empty() {
            PERCENTILES.iter().map(|_| "-".to_string()).collect()
        } else {
            PERCENTILES
                .iter()
                .map(|p| format!("{:.3}", ms(&r.latency_us, *p)))
                .collect()
        };
        println!(
            "{:>4} {:>11.0} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11.2}",
            acks_name(r.acks),
            r.messages as f64 / r.seconds,
            r.bytes as f64 / r.seconds / 1e6,
            latency[0],
            latency[1],
            latency[2],
            latency[3],
            latency[4],
            latency[5],
            r.errors,
            r.cpu_us_per_message
        );
    }
}

/// End-to-end results of runs with consumers.
pub fn print_e2e_table(results: &[RunResult]) {
    if results.iter().all(|r| r.e2e.is_none()) {
        return;
    }
    println!("end to end (intended send -> read by a consumer):");
    println!(
        "{:>4} {:>10} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "acks",
        "consumed",
        "lost",
        "dup",
        "corrupt",
        "p50 ms",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max"
    );
    for r in results {
        let Some(e) = &r.e2e else { continue };
        let cells: Vec<String> = PERCENTILES
            .iter()
            .map(|p| {
                if e.latency_us.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.3}", ms(&e.latency_us, *p))
                }
            })
            .collect();
        println!(
            "{:>4} {:>10} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            acks_name(r.acks),
            e.consumed,
            e.lost,
            e.duplicated,
            e.corrupted,
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5]
        );
    }
}

/// The broker's CPU per batch and per MB, for runs with --broker-pid.
pub fn print_broker_cpu_table(results: &[RunResult]) {
    if results.iter().all(|r| r.broker_cpu.is_none()) {
        return;
    }
    println!("broker CPU over the measured window (/proc/<pid>/stat):");
    println!(
        "{:>4} {:>10} {:>8} {:>8} {:>13} {:>12} {:>12} {:>11}",
        "acks",
        "batches",
        "user s",
        "sys s",
        "user us/batch",
        "sys us/batch",
        "us/batch",
        "CPU ms/MB"
    );
    for r in results {
        let Some(b) = &r.broker_cpu else { continue };
        println!(
            "{:>4} {:>10} {:>8.2} {:>8.2} {:>13.1} {:>12.1} {:>12.1} {:>11.2}",
            acks_name(r.acks),
            r.batches,
            b.cpu.user_s,
            b.cpu.system_s,
            b.user_us_per_batch,
            b.system_us_per_batch,
            b.user_us_per_batch + b.system_us_per_batch,
            b.ms_per_mb
        );
    }
}

/// The brokers' own counters, for runs with --broker-metrics.
pub fn print_broker_metrics_table(results: &[RunResult]) {
    if results.iter().all(|r| r.broker_metrics.is_none()) {
        return;
    }
    println!("broker counters over the measured window (/metrics):");
    println!(
        "{:>4} {:>10} {:>14} {:>14} {:>16} {:>12} {:>13}",
        "acks",
        "batches",
        "durable writes",
        "batches/write",
        "produce requests",
        "core hops",
        "hops/request"
    );
    for r in results {
        let Some(m) = &r.broker_metrics else { continue };
        println!(
            "{:>4} {:>10.0} {:>14.0} {:>14.2} {:>16.0} {:>12.0} {:>13.2}",
            acks_name(r.acks),
            m.batches,
            m.flushes,
            m.batches_per_flush(),
            m.produce_requests,
            m.produce_hops,
            m.hops_per_produce()
        );
    }
}

fn broker_metrics_json(metrics: Option<&crate::broker_metrics::Counters>) -> String {
    match metrics {
        None => "null".to_string(),
        Some(m) => format!(
            "{{\"batches\": {:.0}, \"durable_writes\": {:.0}, \"batches_per_durable_write\": {:.3}, \"produce_requests\": {:.0}, \"cross_core_produce_calls\": {:.0}}}",
            m.batches, m.flushes, m.batches_per_flush(), m.produce_requests, m.produce_hops
        ),
    }
}

fn broker_cpu_json(cpu: Option<&crate::broker_cpu::BrokerCpu>) -> String {
    match cpu {
        None => "null".to_string(),
        Some(b) => format!(
            "{{\"user_s\": {:.3}, \"system_s\": {:.3}, \"user_us_per_batch\": {:.2}, \"system_us_per_batch\": {:.2}, \"cpu_ms_per_mb\": {:.3}}}",
            b.cpu.user_s, b.cpu.system_s, b.user_us_per_batch, b.system_us_per_batch, b.ms_per_mb
        ),
    }
}

fn percentiles_json(histogram: &Histogram<u64>) -> String {
    PERCENTILES
        .iter()
        .map(|p| {
            let value = if histogram.is_empty() {
                0.0
            } else {
                ms(histogram, *p)
            };
            format!("\"p{p}\": {value:.3}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn e2e_json(e2e: Option<&crate::produce::E2e>) -> String {
    let Some(e) = e2e else {
        return "null".to_string();
    };
    let distribution: Vec<String> = distribution(&e.latency_us)
        .iter()
        .map(|(percentile, ms)| format!("[{percentile:.6}, {ms:.4}]"))
        .collect();
    format!(
        "{{\"consumed\": {}, \"lost\": {}, \"duplicated\": {}, \"corrupted\": {}, \"latency_ms\": {{{}}}, \"distribution\": [{}]}}",
        e.consumed,
        e.lost,
        e.duplicated,
        e.corrupted,
        percentiles_json(&e.latency_us),
        distribution.join(", ")
    )
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn json_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => "\\\"".chars().collect::<Vec<_>>(),
            '\\' => "\\\\".chars().collect(),
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

pub fn json(options: &Options, results: &[RunResult]) -> String {
    let cpu_model = read_trimmed("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut runs = Vec::new();
    for r in results {
        let percentiles: Vec<String> = PERCENTILES
            .iter()
            .map(|p| {
                format!(
                    "\"p{p}\": {:.3}",
                    if r.latency_us.is_empty() {
                        0.0
                    } else {
                        ms(&r.latency_us, *p)
                    }
                )
            })
            .collect();
        let distribution: Vec<String> = distribution(&r.latency_us)
            .iter()
            .map(|(percentile, ms)| format!("[{percentile:.6}, {ms:.4}]"))
            .collect();
        runs.push(format!(
            "{{\"acks\": {}, \"messages\": {}, \"seconds\": {}, \"msgs_per_s\": {:.1}, \"mb_per_s\": {:.3}, \"errors\": {}, \"cpu_us_per_message\": {:.3}, \"latency_ms\": {{{}}}, \"send_delay_ms_p99\": {:.3}, \"distribution\": [{}], \"e2e\": {}, \"batches\": {}, \"broker_cpu\": {}, \"broker_metrics\": {}}}",
            json_string(acks_name(r.acks)),
            r.messages,
            r.seconds,
            r.messages as f64 / r.seconds,
            r.bytes as f64 / r.seconds / 1e6,
            r.errors,
            r.cpu_us_per_message,
            percentiles.join(", "),
            if r.send_delay_us.is_empty() { 0.0 } else { ms(&r.send_delay_us, 99.0) },
            distribution.join(", "),
            e2e_json(r.e2e.as_ref()),
            r.batches,
            broker_cpu_json(r.broker_cpu.as_ref()),
            broker_metrics_json(r.broker_metrics.as_ref()),
        ));
    }
    format!(
        "{{\n  \"label\": {},\n  \"parameters\": {{\"bootstrap\": {}, \"topic\": {}, \"partitions\": {}, \"message_bytes\": {}, \"batch_bytes\": {}, \"producers\": {}, \"in_flight\": {}, \"rate\": {}, \"duration_s\": {}, \"warmup_s\": {}, \"consumers\": {}, \"compression\": {}, \"keys\": {}, \"key_distribution\": {}, \"replication_factor\": {}, \"topic_configs\": {{{}}}}},\n  \"machine\": {{\"cores\": {cores}, \"cpu\": {}, \"kernel\": {}}},\n  \"runs\": [\n    {}\n  ]\n}}\n",
        json_string(&options.label()),
        json_string(&options.bootstrap),
        json_string(&options.topic),
        options.partitions,
        options.message_bytes,
        options.batch_bytes,
        options.producers,
        options.in_flight,
        options.rate.map_or("null".to_string(), |r| r.to_string()),
        options.duration_s,
        options.warmup_s,
        options.consumers,
        json_string(options.compression.name()),
        options.keys,
        json_string(&format!("{:?}", options.key_distribution).to_lowercase()),
        options.replication_factor,
        options
            .topic_configs
            .iter()
            .map(|(key, value)| format!("{}: {}", json_string(key), json_string(value)))
            .collect::<Vec<_>>()
            .join(", "),
        json_string(&cpu_model),
        json_string(&read_trimmed("/proc/sys/kernel/osrelease")),
        runs.join(",\n    ")
    )
}

/// (percentile, latency ms) points as HdrHistogram's percentile output
/// walks them: 5 ticks per halving of the distance to 100%.
pub fn distribution(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    histogram
        .iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to() * 100.0,
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect()
}

/// HdrHistogram's classic percentile-distribution text (`.hgrm`), values
/// in milliseconds, as `outputPercentileDistribution(out, 1000.0)` writes it.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for v in histogram.iter_quantiles(5) {
        let quantile = v.quantile_iterated_to();
        let inverse = if quantile < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - quantile))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:>12.3} {:>2.12} {:>10} {inverse}\n",
            v.value_iterated_to() as f64 / 1000.0,
            quantile,
            v.count_since_last_iteration()
        ));
    }
    out.push_str(&format!(
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]\n#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0,
        histogram.max() as f64 / 1000.0,
        histogram.len(),
        histogram.buckets(),
        histogram.distinct_values()
    ));
    out
}

/// A label made safe for a file name.
pub fn file_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `<label>-acks-<n>.hgrm` per run with latencies into `dir`.
pub fn write_hgrm(
    dir: &std::path::Path,
    label: &str,
    results: &[RunResult],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let safe = file_label(label);
    for r in results.iter().filter(|r| !r.latency_us.is_empty()) {
        let path = dir.join(format!("{safe}-acks-{}.hgrm", acks_name(r.acks)));
        std::fs::write(path, hgrm(&r.latency_us))?;
    }
    Ok(())
}

/// The runs as chart series (for `bench produce --svg/--png`).
pub fn series(label: &str, results: &[RunResult]) -> Vec<crate::compare::Series> {
    results
        .iter()
        .map(|r| crate::compare::Series {
            label: label.to_string(),
            acks: acks_name(r.acks).to_string(),
            msgs_per_s: r.messages as f64 / r.seconds,
            mb_per_s: r.bytes as f64 / r.seconds / 1e6,
            errors: r.errors,
            percentiles: PERCENTILES
                .iter()
                .map(|p| {
                    if r.latency_us.is_empty() {
                        0.0
                    } else {
                        ms(&r.latency_us, *p)
                    }
                })
                .collect(),
            distribution: distribution(&r.latency_us),
        })
        .collect()
}
