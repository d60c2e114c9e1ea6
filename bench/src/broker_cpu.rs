//! The broker's own CPU over a run's measured window, read from
//! `/proc/<pid>/stat` (utime and stime, every thread of the process,
//! io_uring's io-wq workers included) for each `--broker-pid`, so a run
//! says what a batch and a megabyte cost the broker, not only the client.

use anyhow::{bail, Context, Result};

/// User and system CPU seconds of a set of processes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    pub user_s: f64,
    pub system_s: f64,
}

impl CpuTimes {
    /// The sum over `pids` now.
    pub fn of(pids: &[u32]) -> Result<CpuTimes> {
        let ticks = clock_ticks();
        let mut total = CpuTimes::default();
        for pid in pids {
            let path = format!("/proc/{pid}/stat");
            let stat = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {path} (is --broker-pid {pid} running?)"))?;
            let (user, system) = parse_stat(&stat).with_context(|| format!("parsing {path}"))?;
            total.user_s += user as f64 / ticks;
            total.system_s += system as f64 / ticks;
        }
        Ok(total)
    }

    pub fn since(self, before: CpuTimes) -> CpuTimes {
        CpuTimes {
            user_s: self.user_s - before.user_s,
            system_s: self.system_s - before.system_s,
        }
    }
}

/// What the broker spent per unit of work in a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BrokerCpu {
    pub cpu: CpuTimes,
    /// µs of user / system CPU per produce batch.
    pub user_us_per_batch: f64,
    pub system_us_per_batch: f64,
    /// CPU seconds (user + system) per MB (10^6 bytes) of records.
    pub ms_per_mb: f64,
}

impl BrokerCpu {
    pub fn new(cpu: CpuTimes, batches: u64, bytes: u64) -> BrokerCpu {
        let batches = batches.max(1) as f64;
        let mb = (bytes as f64 / 1e6).max(1e-9);
        BrokerCpu {
            cpu,
            user_us_per_batch: cpu.user_s * 1e6 / batches,
            system_us_per_batch: cpu.system_s * 1e6 / batches,
            ms_per_mb: (cpu.user_s + cpu.system_s) * 1e3 / mb,
        }
    }
}

/// utime and stime (clock ticks) from a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces or
/// parentheses itself, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Result<(u64, u64)> {
    let Some(close) = stat.rfind(')') else {
        bail!("no command name");
    };
    // After ")": state (field 3), ..., utime is field 14, stime 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("too few fields")?
            .parse()
            .context("not a number")
    };
    Ok((field(14)?, field(15)?))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    #[expect(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_last_parenthesis() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 125 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat).ok(), Some((250, 125)));
        assert!(parse_stat("4242 (x) S 1 2").is_err());
    }

    #[test]
    fn this_process_has_spent_cpu() {
        let mut spin = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        let cpu = CpuTimes::of(&[std::process::id()]).expect("own stat");
        assert!(cpu.user_s + cpu.system_s > 0.0, "{cpu:?}");
    }

    #[test]
    fn per_batch_and_per_mb() {
        let cpu = CpuTimes {
            user_s: 1.0,
            system_s: 3.0,
        };
        let per = BrokerCpu::new(cpu, 1_000_000, 2_000_000_000);
        assert_eq!(per.user_us_per_batch, 1.0);
        assert_eq!(per.system_us_per_batch, 3.0);
        assert_eq!(per.ms_per_mb, 2.0);
    }
}
