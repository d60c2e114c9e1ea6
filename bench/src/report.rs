//! The final table and the JSON report.

use crate::produce::{Options, RunResult};
use hdrhistogram::Histogram;

const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

fn acks_name(acks: i16) -> &'static str {
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
        runs.push(format!(
            "{{\"acks\": {}, \"messages\": {}, \"seconds\": {}, \"msgs_per_s\": {:.1}, \"mb_per_s\": {:.3}, \"errors\": {}, \"cpu_us_per_message\": {:.3}, \"latency_ms\": {{{}}}, \"send_delay_ms_p99\": {:.3}}}",
            json_string(acks_name(r.acks)),
            r.messages,
            r.seconds,
            r.messages as f64 / r.seconds,
            r.bytes as f64 / r.seconds / 1e6,
            r.errors,
            r.cpu_us_per_message,
            percentiles.join(", "),
            if r.send_delay_us.is_empty() { 0.0 } else { ms(&r.send_delay_us, 99.0) },
        ));
    }
    format!(
        "{{\n  \"parameters\": {{\"bootstrap\": {}, \"topic\": {}, \"partitions\": {}, \"message_bytes\": {}, \"batch_bytes\": {}, \"producers\": {}, \"in_flight\": {}, \"rate\": {}, \"duration_s\": {}, \"warmup_s\": {}}},\n  \"machine\": {{\"cores\": {cores}, \"cpu\": {}, \"kernel\": {}}},\n  \"runs\": [\n    {}\n  ]\n}}\n",
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
        json_string(&cpu_model),
        json_string(&read_trimmed("/proc/sys/kernel/osrelease")),
        runs.join(",\n    ")
    )
}
