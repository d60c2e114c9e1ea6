//! What one cross-core hop costs: core 0 sends an empty job to core 1
//! through the broker's `Router` and awaits the reply, one at a time, and
//! prints round-trip percentiles. Compare with the same loop on one core
//! (`--same-core`, a spawned local task answering) for the floor.
//!
//!     cargo run --release -p broker --example core_hop [ROUND_TRIPS] [--same-core]

use broker::router::{Job, Router};
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let round_trips: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200_000);
    let same_core = std::env::args().any(|a| a == "--same-core");
    let spin_us: u64 = std::env::var("SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut mesh = Router::<()>::mesh(2).into_iter();
    let (sender, _) = mesh.next().ok_or_else(|| anyhow::anyhow!("mesh"))?;
    let (_, requests) = mesh.next().ok_or_else(|| anyhow::anyhow!("mesh"))?;
    let answer = |requests: flume::Receiver<Job<()>>| broker::router::serve(Rc::new(()), requests);
    let responder = if same_core {
        None
    } else {
        let requests = requests.clone();
        Some(
            LocalExecutorBuilder::new(Placement::Fixed(1))
                .io_memory(1 << 20)
                .spin_before_park(Duration::from_micros(spin_us))
                .spawn(move || answer(requests))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    };
    let timings = LocalExecutorBuilder::new(Placement::Fixed(0))
        .io_memory(1 << 20)
        .spin_before_park(Duration::from_micros(spin_us))
        .spawn(move || async move {
            if same_core {
                glommio::spawn_local(answer(requests)).detach();
            } else {
                drop(requests);
            }
            let mut timings = Vec::with_capacity(round_trips);
            for _ in 0..round_trips {
                let start = Instant::now();
                sender.call(1, |_state: Rc<()>| async {}).await;
                timings.push(start.elapsed());
            }
            timings
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(responder);
    report(
        timings,
        if same_core {
            "same core"
        } else {
            "core 0 -> core 1"
        },
    );
    std::process::exit(0)
}

fn report(mut timings: Vec<Duration>, what: &str) {
    timings.sort();
    let at = |q: f64| timings[((timings.len() as f64 * q) as usize).min(timings.len() - 1)];
    let mean = timings.iter().sum::<Duration>() / timings.len() as u32;
    println!(
        "{what}: {} round trips, mean {:.2} us, p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.2} us",
        timings.len(),
        mean.as_secs_f64() * 1e6,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        timings[timings.len() - 1].as_secs_f64() * 1e6,
    );
}
