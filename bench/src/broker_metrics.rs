//! The broker's own figures over a run's measured window, from its admin
//! endpoint's `/metrics` (`--broker-metrics HOST:PORT[,..]`, Sluice's
//! `sluice.admin.listen`): durable writes, batches per durable write,
//! produce requests and how many of them crossed cores, so that a run
//! explains itself. Scraped when the window opens and when it closes; the
//! figures are the differences, summed over the brokers given.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The counters bench reads, summed over their labels and brokers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub flushes: f64,
    pub batches: f64,
    pub produce_requests: f64,
    pub produce_hops: f64,
}

impl Counters {
    /// The sum over `endpoints` now.
    pub fn scrape(endpoints: &[String]) -> Result<Counters> {
        let mut total = Counters::default();
        for endpoint in endpoints {
            let text = get_metrics(endpoint).with_context(|| {
                format!("scraping http://{endpoint}/metrics (--broker-metrics)")
            })?;
            let sums = sums(&text)?;
            let sum = |name: &str, label: Option<(&str, &str)>| {
                sums.get(&(name.to_string(), label.map(|(k, v)| format!("{k}=\"{v}\""))))
                    .copied()
                    .unwrap_or(0.0)
            };
            total.flushes += sum("sluice_storage_flushes_total", None);
            total.batches += sum("sluice_produce_batches_total", None);
            total.produce_requests += sum(
                "kafka_network_requestmetrics_requests_total",
                Some(("request", "Produce")),
            );
            total.produce_hops += sum("sluice_cross_core_calls_total", Some(("kind", "produce")));
        }
        Ok(total)
    }

    pub fn since(self, before: Counters) -> Counters {
        Counters {
            flushes: self.flushes - before.flushes,
            batches: self.batches - before.batches,
            produce_requests: self.produce_requests - before.produce_requests,
            produce_hops: self.produce_hops - before.produce_hops,
        }
    }

    /// Batches per durable write (0 when there was none).
    pub fn batches_per_flush(&self) -> f64 {
        if self.flushes > 0.0 {
            self.batches / self.flushes
        } else {
            0.0
        }
    }

    pub fn hops_per_produce(&self) -> f64 {
        if self.produce_requests > 0.0 {
            self.produce_hops / self.produce_requests
        } else {
            0.0
        }
    }
}

/// One GET of `/metrics` (HTTP/1.1, `Connection: close`): the body.
fn get_metrics(endpoint: &str) -> Result<String> {
    let mut stream = TcpStream::connect(endpoint)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        bail!("no end of the HTTP head");
    };
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        bail!("answered {status:?}");
    }
    Ok(body.to_string())
}

/// Sums of the samples in an OpenMetrics text: by (name, None) over all
/// labels, and by (name, Some(`key="value"`)) over samples with that label.
fn sums(text: &str) -> Result<HashMap<(String, Option<String>), f64>> {
    let mut sums = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("a sample without a value: {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("not a number: {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        *sums.entry((name.to_string(), None)).or_insert(0.0) += value;
        // Label values here are topic names, API names and small words:
        // none holds a comma or a quote.
        for label in labels.split(',').filter(|l| !l.is_empty()) {
            *sums
                .entry((name.to_string(), Some(label.to_string())))
                .or_insert(0.0) += value;
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_sum_by_name_and_by_label() {
        let text = "# TYPE sluice_cross_core_calls counter\n\
            sluice_cross_core_calls_total{core=\"0\",to=\"1\",kind=\"produce\"} 5\n\
            sluice_cross_core_calls_total{core=\"1\",to=\"0\",kind=\"produce\"} 2\n\
            sluice_cross_core_calls_total{core=\"1\",to=\"0\",kind=\"fetch\"} 7\n\
            sluice_storage_flushes_total{core=\"0\"} 3\n\
            sluice_broker_ready 1\n\
            # EOF\n";
        let summed = sums(text).expect("parses");
        let get = |name: &str, label: Option<&str>| {
            summed[&(name.to_string(), label.map(str::to_string))]
        };
        assert_eq!(get("sluice_cross_core_calls_total", None), 14.0);
        assert_eq!(
            get("sluice_cross_core_calls_total", Some("kind=\"produce\"")),
            7.0
        );
        assert_eq!(get("sluice_storage_flushes_total", None), 3.0);
        assert_eq!(get("sluice_broker_ready", None), 1.0);
        assert!(sums("broken_line_without_value").is_err());
        assert!(sums("name{a=\"b\"} x").is_err());
    }

    #[test]
    fn ratios_of_a_window() {
        let before = Counters {
            flushes: 10.0,
            batches: 40.0,
            produce_requests: 40.0,
            produce_hops: 0.0,
        };
        let after = Counters {
            flushes: 20.0,
            batches: 100.0,
            produce_requests: 100.0,
            produce_hops: 30.0,
        };
        let window = after.since(before);
        assert_eq!(window.batches_per_flush(), 6.0);
        assert_eq!(window.hops_per_produce(), 0.5);
        assert_eq!(Counters::default().batches_per_flush(), 0.0);
    }
}
