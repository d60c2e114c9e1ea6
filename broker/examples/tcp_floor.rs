//! The floor under the broker's CPU per produce request: a glommio server
//! that does only what any broker must for one request on a socket (receive
//! a length-prefixed frame, send a small answer) and nothing else: no
//! parsing, no CRC, no log, no allocation per request. Clients shaped like
//! `bench produce` (P connections, each with a writer that waits for a
//! slot among 5 before sending on and a reader taking the answers, as
//! bench's producers do; FRAME bytes a request, 64-byte answers) run on
//! threads of this process; the server's executor thread reads its own user
//! and system CPU (utime and stime of /proc/thread-self/stat) over the
//! measured requests and prints them per request. What the broker spends
//! per 16 KiB batch above this is its own work.
//!
//!     cargo build --release -p broker --example tcp_floor
//!     target/release/examples/tcp_floor [SECONDS] [--frame BYTES] [--producers P] [--cpu N] [--read-buffer BYTES]
//!
//! `--read-buffer` (default none) receives through a buffer of that size,
//! so one receive may carry several frames.
//! `SPIN_US` (default 50, the broker's `--idle-poll-time-us`) is how long
//! the executor polls before it sleeps. `--cpu N` pins the server to CPU N
//! (the clients are not pinned).

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 5;
const ANSWER_BYTES: usize = 64;

struct Options {
    seconds: u64,
    frame: usize,
    producers: usize,
    cpu: Option<usize>,
    spin_us: u64,
    read_buffer: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 8,
        frame: 16 * 1024 + 130,
        producers: 2,
        cpu: None,
        read_buffer: 0,
        spin_us: std::env::var("SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--frame" => options.frame = value()?.parse()?,
            "--producers" => options.producers = value()?.parse()?,
            "--cpu" => options.cpu = Some(value()?.parse()?),
            "--read-buffer" => options.read_buffer = value()?.parse()?,
            flag if flag.starts_with("--") => anyhow::bail!("unknown flag {flag}"),
            seconds => options.seconds = seconds.parse()?,
        }
    }
    Ok(options)
}

/// User and system CPU of the calling thread, in microseconds (from
/// /proc/thread-self/stat: utime and stime, in USER_HZ = 100 ticks).
fn thread_cpu_us() -> std::io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t * 10_000)
            .ok_or_else(|| std::io::Error::other("unreadable /proc/thread-self/stat"))
    };
    Ok((tick(11)?, tick(12)?))
}

/// One client connection: a writer sending frames with at most IN_FLIGHT
/// unanswered, a reader taking the answers, until `stop`.
fn client(
    address: std::net::SocketAddr,
    frame: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut writer = std::net::TcpStream::connect(address)?;
    writer.set_nodelay(true)?;
    let mut reader = writer.try_clone()?;
    let (slots, returned) = mpsc::sync_channel::<()>(IN_FLIGHT);
    let answers = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut answer = [0u8; ANSWER_BYTES];
        while returned.recv().is_ok() {
            reader.read_exact(&mut answer)?;
        }
        Ok(())
    });
    let mut request = vec![0x5au8; 4 + frame];
    request[..4].copy_from_slice(&(frame as u32).to_be_bytes());
    while !stop.load(Ordering::Relaxed) {
        writer.write_all(&request)?;
        slots
            .send(())
            .map_err(|_| anyhow::anyhow!("reader ended"))?;
    }
    drop(slots);
    answers
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    // A zero-length frame tells the server this connection is done.
    writer.write_all(&0u32.to_be_bytes())?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    anyhow::ensure!(
        options.frame > 0,
        "--frame must be at least 1 (0 ends a connection)"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    drop(listener);
    let served = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let (cpu_at, cpu_samples) = mpsc::channel::<((u64, u64), u64)>();
    let placement = options.cpu.map_or(Placement::Unbound, Placement::Fixed);
    let (producers, frame, read_buffer) = (options.producers, options.frame, options.read_buffer);
    let server = {
        let served = served.clone();
        let measuring = measuring.clone();
        LocalExecutorBuilder::new(placement)
            .spin_before_park(Duration::from_micros(options.spin_us))
            .spawn(move || async move {
                let served_all = serve(
                    address,
                    producers,
                    frame,
                    read_buffer,
                    served,
                    measuring,
                    cpu_at,
                )
                .await;
                if let Err(error) = &served_all {
                    eprintln!("server: {error}");
                }
                served_all
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(5);
    let clients = (0..producers)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // The server binds the port on its own thread: retry until
                // it listens, up to a deadline.
                let result = loop {
                    match client(address, frame, stop.clone()) {
                        Err(e) if Instant::now() < deadline && served_none(&e) => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        other => break other,
                    }
                };
                if let Err(error) = &result {
                    eprintln!("client: {error:#}");
                }
                result
            })
        })
        .collect::<Vec<_>>();
    std::thread::sleep(Duration::from_secs(2)); // warm-up, excluded
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    // The server samples within a millisecond of the flag; a client or the
    // server that failed leaves no sample, and then its error is the answer.
    let sample_wait = Duration::from_secs(10);
    let failed = |what: &str| {
        anyhow::anyhow!("no {what} CPU sample from the server: a client or the server failed (see its error above, if any)")
    };
    let (cpu_start, served_start) = cpu_samples
        .recv_timeout(sample_wait)
        .map_err(|_| failed("first"))?;
    std::thread::sleep(Duration::from_secs(options.seconds));
    measuring.store(false, Ordering::Relaxed);
    let (cpu_end, served_end) = cpu_samples
        .recv_timeout(sample_wait)
        .map_err(|_| failed("last"))?;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client
            .join()
            .map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    server
        .join()
        .map_err(|e| anyhow::anyhow!("server: {e}"))??;
    let requests = (served_end - served_start).max(1) as f64;
    let user = (cpu_end.0 - cpu_start.0) as f64 / requests;
    let system = (cpu_end.1 - cpu_start.1) as f64 / requests;
    println!(
        "frame {frame} B, {producers} connections x {IN_FLIGHT} in flight, spin {} us, read buffer {read_buffer} B: \
         {:.0} requests/s, {:.1} MB/s; server CPU per request: user {user:.2} us, system {system:.2} us, total {:.2} us",
        options.spin_us,
        requests / elapsed.as_secs_f64(),
        requests * frame as f64 / elapsed.as_secs_f64() / 1e6,
        user + system,
    );
    Ok(())
}

/// The server: accepts `producers` connections and answers every frame on
/// them until each sends its end marker, sampling its own thread's CPU
/// whenever `measuring` flips.
async fn serve(
    address: std::net::SocketAddr,
    producers: usize,
    frame: usize,
    read_buffer: usize,
    served: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
    cpu_at: mpsc::Sender<((u64, u64), u64)>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(address)?;
    let mut connections = Vec::new();
    let open = std::rc::Rc::new(std::cell::Cell::new(producers));
    for _ in 0..producers {
        let stream = listener.accept().await?;
        stream.set_nodelay(true)?;
        // With a read buffer, one receive can carry several
        // frames (fewer syscalls, one more copy).
        let mut stream = futures_lite::io::BufReader::with_capacity(read_buffer.max(1), stream);
        let served = served.clone();
        let open = open.clone();
        connections.push(glommio::spawn_local(async move {
            let mut length = [0u8; 4];
            let mut body = vec![0u8; frame];
            let answer = [0u8; ANSWER_BYTES];
            let served_all = async {
                loop {
                    stream.read_exact(&mut length).await?;
                    let len = u32::from_be_bytes(length) as usize;
                    if len == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    if len > frame {
                        return Err(std::io::Error::other(format!(
                            "a {len}-byte frame, larger than --frame"
                        )));
                    }
                    body.resize(len, 0);
                    stream.read_exact(&mut body).await?;
                    stream.get_mut().write_all(&answer).await?;
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
            .await;
            open.set(open.get() - 1);
            served_all
        }));
    }
    // The measured window starts and ends on the server's own
    // thread, so its CPU is read where it is spent.
    let mut was_measuring = false;
    while open.get() > 0 {
        let now = measuring.load(Ordering::Relaxed);
        if now != was_measuring {
            let _ = cpu_at.send((thread_cpu_us()?, served.load(Ordering::Relaxed)));
            was_measuring = now;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    for connection in connections {
        connection.await?;
    }
    Ok(())
}

/// A refused connection: the server is not listening yet.
fn served_none(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}
