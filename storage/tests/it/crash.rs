//! A real crash test: a child process appends with durable acks and reports
//! each acknowledged batch on its stdout; the parent SIGKILLs it at random
//! points, reopens the log, and checks that every acknowledged batch is there
//! byte for byte. The child is this same test binary, re-run on one test.

use crate::common::{batch, options, run};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use storage::{Log, LogConfig};

const CHILD_DIR_ENV: &str = "SLUICE_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "SLUICE_CRASH_CHILD_SEED";
const ROUNDS: u64 = 12;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        index_interval_bytes: 4096,
        ..LogConfig::default()
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The child: four concurrent appenders, forever, printing `ACK base crc`
/// once each append has resolved (durable). Does nothing in a normal run.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    run(async move {
        let (log, _) = Log::open(dir.as_ref(), options(config()))
            .await
            .expect("child open");
        let tasks: Vec<_> = (0..4u64)
            .map(|task| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let mut rng = seed.wrapping_mul(31).wrapping_add(task) | 1;
                    for i in 0.. {
                        let records = 1 + (xorshift(&mut rng) % 8) as usize;
                        let size = (xorshift(&mut rng) % 3000) as usize;
                        let info = log
                            .append(batch(&format!("s{seed}t{task}i{i}"), records, size))
                            .await
                            .expect("child append");
                        let read = log.read(info.base_offset, 1).await.expect("child read");
                        let stored = read.batches().next().expect("child batch");
                        println!("ACK {} {}", info.base_offset, crc32c::crc32c(stored));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

#[test]
fn sigkill_mid_append_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash test seed {rng}");
    let mut acked: Vec<(i64, u32)> = Vec::new();
    for round in 0..ROUNDS {
        let kill_after = 1 + xorshift(&mut rng) % 300;
        let child = Command::new(&exe)
            .args([
                "crash::crash_child_appender",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_SEED_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut child = KillOnDrop(child);
        let stdout = child.0.stdout.take().expect("child stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child line");
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let mut fields = rest.split(' ');
            let base: i64 = fields.next().and_then(|f| f.parse().ok()).expect("base");
            let crc: u32 = fields.next().and_then(|f| f.parse().ok()).expect("crc");
            acked.push((base, crc));
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        assert!(seen >= kill_after, "child ended early in round {round}");
        child.0.kill().expect("SIGKILL child");
        child.0.wait().expect("reap child");
        drop(child);

        let acked_now = acked.clone();
        let path = dir.path().to_path_buf();
        run(async move {
            let (log, report) = Log::open(&path, options(config())).await.expect("reopen");
            for (base, crc) in &acked_now {
                let read = log.read(*base, 1).await.expect("acked offset in range");
                let stored = read.batches().next().expect("acked batch present");
                let header = storage::batch::check_stored(stored).expect("valid batch");
                assert_eq!(header.base_offset(), *base, "round {round}");
                assert_eq!(crc32c::crc32c(stored), *crc, "batch at {base} changed");
            }
            assert!(report
                .segments
                .iter()
                .all(|s| !s.corrupt || s.truncated_bytes > 0));
        });
    }
    assert!(acked.len() as u64 >= ROUNDS);
}
