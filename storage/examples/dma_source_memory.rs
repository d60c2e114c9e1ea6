//! Disk benchmark (not a test): how fast one DMA write + fdatasync per
//! block goes depending on the memory the block is written from. fio's
//! default reuses one buffer that the CPU barely touches between writes; a
//! log writes bytes the CPU has just produced (received, validated, copied
//! into an aligned buffer). On a VM the difference can be large, so
//! scripts/bench-storage.sh reports the log against both.
//!
//! cargo run --release -p storage --example dma_source_memory -- DIR BLOCK_BYTES TOTAL_MIB
//!
//! Prints one JSON line per source:
//! - `reused`: one buffer filled once, written every time (fio's shape);
//! - `cycled`: 64 buffers filled before the clock starts, written in turn;
//! - `copied`: each block memcpy'd into a fresh aligned buffer just before
//!   its write, from 64 sources (the least a log that copies must do).

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::LocalExecutorBuilder;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

const SOURCES: usize = 64;

fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_string())
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(arg(1, "/tmp/sluice-dma-source"));
    let block: usize = arg(2, "1048576").parse()?;
    let total_mib: usize = arg(3, "256").parse()?;
    anyhow::ensure!(
        block.is_multiple_of(4096),
        "BLOCK_BYTES must be a multiple of 4096"
    );
    std::fs::create_dir_all(&dir)?;
    let io_memory = (SOURCES + 2) * block + (8 << 20);
    LocalExecutorBuilder::default()
        .io_memory(io_memory)
        .make()
        .map_err(|e| anyhow::anyhow!("glommio executor: {e}"))?
        .run(async move { bench(&dir, block, total_mib).await })
}

async fn bench(dir: &Path, block: usize, total_mib: usize) -> anyhow::Result<()> {
    // glommio probes the device with the first DMA file it opens; an empty
    // file makes the probe wrong (see storage::io::settle_iopoll_probe).
    let probe = dir.join("probe");
    std::fs::write(&probe, [0xa5u8; 4096])?;
    DmaFile::open(&probe)
        .await
        .map_err(io)?
        .close()
        .await
        .map_err(io)?;
    std::fs::remove_file(&probe)?;

    let blocks = (total_mib << 20) / block;
    let sources: Vec<Vec<u8>> = (0..SOURCES).map(|i| vec![i as u8 | 1; block]).collect();
    for source in ["reused", "cycled", "copied"] {
        let path = dir.join(format!("dma-{source}"));
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .read(true)
            .dma_open(&path)
            .await
            .map_err(io)?;
        let filled: Vec<Rc<DmaBuffer>> = (0..SOURCES)
            .map(|i| {
                let mut buffer = file.alloc_dma_buffer(block);
                buffer.as_bytes_mut().copy_from_slice(&sources[i]);
                Rc::new(buffer)
            })
            .collect();
        let started = Instant::now();
        for i in 0..blocks {
            let position = (i * block) as u64;
            match source {
                "reused" => file
                    .write_rc_at(filled[0].clone(), position)
                    .await
                    .map_err(io)?,
                "cycled" => file
                    .write_rc_at(filled[i % SOURCES].clone(), position)
                    .await
                    .map_err(io)?,
                _ => {
                    let mut buffer = file.alloc_dma_buffer(block);
                    buffer.as_bytes_mut().copy_from_slice(&sources[i % SOURCES]);
                    file.write_at(buffer, position).await.map_err(io)?
                }
            };
            file.fdatasync().await.map_err(io)?;
        }
        let mib_per_s = (blocks * block) as f64 / 1048576.0 / started.elapsed().as_secs_f64();
        drop(filled);
        file.close().await.map_err(io)?;
        std::fs::remove_file(&path)?;
        println!(
            "{{\"test\":\"dma_{source}\",\"block_bytes\":{block},\"mib_per_s\":{mib_per_s:.1}}}"
        );
    }
    Ok(())
}

fn io(error: glommio::GlommioError<()>) -> std::io::Error {
    error.into()
}
