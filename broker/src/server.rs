//! Process set-up and the executor: locked-memory limit, data dir and port
//! checks, the accept loop, and a clean stop on SIGTERM/SIGINT.

use crate::config::Config;
use crate::shard::Shard;
use anyhow::{bail, Context, Result};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// io_uring memory registered per executor.
const IO_MEMORY_BYTES: usize = 16 * 1024 * 1024;
/// Below this the executor would do most I/O through bounce buffers.
const IO_MEMORY_BYTES_MIN: usize = 1024 * 1024;
/// How often the accept loop looks at the stop flag.
const STOP_POLL_MS: u64 = 50;

pub fn run(mut config: Config) -> Result<()> {
    let io_memory = raise_memlock_limit()?;
    check_data_dir(&config.data_dir)?;
    // With a relative data dir ("./data") topic creation failed with a
    // storage I/O error (not yet pinned down in storage); use the absolute
    // path throughout.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("resolve data dir {}", config.data_dir.display()))?;
    // glommio binds with SO_REUSEPORT, which would silently share a port with
    // another broker; a plain bind first turns that into a clear error.
    check_port_free(config.listen).with_context(|| {
        format!(
            "cannot listen on {} (is another broker running?)",
            config.listen
        )
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("install signal handler")?;
    }
    let handle = LocalExecutorBuilder::new(Placement::Fixed(0))
        .name("sluice-core-0")
        .io_memory(io_memory)
        .spawn(move || async move { serve(config, stop).await })
        .map_err(|e| anyhow::anyhow!("start executor (io_uring / locked memory?): {e}"))?;
    handle
        .join()
        .map_err(|e| anyhow::anyhow!("executor failed: {e}"))?
}

async fn serve(config: Config, stop: Arc<AtomicBool>) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", config.listen))?;
    let shard = Shard::open(config.clone()).await?;
    tracing::info!(listen = %config.listen, cores = config.cores, data_dir = %config.data_dir.display(), "sluice broker ready");
    loop {
        let accept = async { Some(listener.accept().await) };
        let stopped = async {
            while !stop.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(STOP_POLL_MS)).await;
            }
            None
        };
        match futures_lite::future::or(accept, stopped).await {
            Some(Ok(stream)) => {
                glommio::spawn_local(shard.clone().serve(stream)).detach();
            }
            Some(Err(error)) => tracing::warn!(%error, "accept failed"),
            None => break,
        }
    }
    tracing::info!("stopping: flushing and closing logs");
    shard.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds and listens once without SO_REUSEPORT (but with SO_REUSEADDR, so
/// TIME_WAIT leftovers of a previous run do not count as busy).
fn check_port_free(address: std::net::SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1)
}

fn check_data_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("data dir {} cannot be created", dir.display()))?;
    let probe = dir.join(".sluice-write-check");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// glommio registers I/O memory with io_uring, which counts against
/// RLIMIT_MEMLOCK. Raise the soft limit to the hard one and size the I/O
/// memory to fit what we got; returns the I/O memory to use.
fn raise_memlock_limit() -> Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[expect(unsafe_code)]
    // SAFETY: getrlimit writes into the struct we pass and own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if read != 0 {
        bail!(
            "getrlimit(RLIMIT_MEMLOCK) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let wanted = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    #[expect(unsafe_code)]
    // SAFETY: setrlimit reads a fully initialised rlimit struct we own.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &wanted) } == 0;
    if raised {
        return Ok(IO_MEMORY_BYTES);
    }
    let to_hard = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    #[expect(unsafe_code)]
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &to_hard) } == 0 {
        limit.rlim_cur = limit.rlim_max;
    }
    let fits = (limit.rlim_cur / 2).min(IO_MEMORY_BYTES as u64) as usize;
    if fits < IO_MEMORY_BYTES_MIN {
        bail!(
            "RLIMIT_MEMLOCK is {} bytes and could not be raised; glommio needs at least {} bytes \
             locked (run as root, `ulimit -l unlimited`, or set memlock in /etc/security/limits.conf)",
            limit.rlim_cur,
            IO_MEMORY_BYTES_MIN * 2
        );
    }
    tracing::info!(
        memlock_bytes = limit.rlim_cur,
        io_memory_bytes = fits,
        "RLIMIT_MEMLOCK not raised; I/O memory sized to fit"
    );
    Ok(fits)
}
