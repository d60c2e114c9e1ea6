//! Tests of glommio's timer handling that Sluice depends on, for any
//! patch of the vendored reactor's timers (third_party/glommio): a timer
//! registered after the core went to sleep for a later one must still wake
//! it on time, and a pending timer must still fire after many wake-ups by
//! I/O. (Keeping the sleep timer armed across sleeps was tried and
//! reverted: docs/benchmarks.md, "Timers kept armed across sleeps"; these
//! tests fail against a version of it that keeps a later timer or loses
//! one.)

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    /// How long the test waits for an outcome before calling it lost; the
    /// late timer is due far after it, so a wrong kept timer shows as a
    /// missed deadline, not as a slow pass.
    const OUTCOME_DEADLINE: Duration = Duration::from_secs(20);
    const LATE_TIMER: Duration = Duration::from_secs(120);
    const EARLY_TIMER: Duration = Duration::from_millis(20);
    /// A latency preemption timer left armed across a sleep would wake the
    /// core within its period (100 ms by default) and hide a lost sleep
    /// timer; the tests set it far beyond their deadline.
    const PREEMPTION_PERIOD: Duration = Duration::from_secs(600);

    /// The executor thread's scheduler state from /proc: `S` while it sleeps
    /// in io_uring_enter (it blocks nowhere else in this test).
    fn thread_state(tid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The state follows the parenthesised name, which may hold spaces.
        let after_name = stat.rsplit_once(')')?.1;
        after_name.trim_start().chars().next()
    }

    /// This thread's id, from /proc/thread-self (`PID/task/TID`).
    fn current_tid() -> i32 {
        std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|link| link.file_name()?.to_str()?.parse().ok())
            .expect("thread id from /proc/thread-self")
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + OUTCOME_DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// The executor sleeps with only a far timer pending (so its sleep timer
    /// is armed for it), is woken by a socket, then registers a near timer:
    /// the near one must fire on its own, long before the far one.
    #[test]
    fn a_nearer_timer_registered_after_a_sleep_fires_before_the_far_one() {
        let (start_tx, start_rx) = mpsc::channel::<(SocketAddr, i32)>();
        let (done_tx, done_rx) = mpsc::channel::<&'static str>();
        let executor = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .preempt_timer(PREEMPTION_PERIOD)
                .spawn(move || async move {
                    let far = glommio::spawn_local(async {
                        glommio::timer::sleep(LATE_TIMER).await;
                        "far"
                    });
                    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    let addr = listener.local_addr().expect("local addr");
                    let _ = start_tx.send((addr, current_tid()));
                    let mut stream = listener.accept().await.expect("accept");
                    let mut byte = [0u8; 1];
                    stream.read_exact(&mut byte).await.expect("read");
                    let near = async {
                        glommio::timer::sleep(EARLY_TIMER).await;
                        "near"
                    };
                    let first = futures_lite::future::or(near, far).await;
                    let _ = done_tx.send(first);
                })
                .expect("executor")
                .join()
                .expect("executor ran")
        });
        let (addr, tid) = start_rx
            .recv_timeout(OUTCOME_DEADLINE)
            .expect("executor started");
        // Asleep with the far timer armed (the sleep a kept timer outlives).
        wait_until("the executor to sleep", || thread_state(tid) == Some('S'));
        let mut client = TcpStream::connect(addr).expect("connect");
        client.write_all(&[1]).expect("write");
        let first = done_rx
            .recv_timeout(OUTCOME_DEADLINE)
            .expect("the near timer did not fire: the core slept on the far timer's deadline");
        assert_eq!(first, "near");
        executor.join().expect("executor thread");
    }

    /// Many sleeps in a row against the same pending timer (the case a kept
    /// sleep timer would save submissions in): the executor echoes bytes one at a time,
    /// sleeping between them with the timer pending; every wake-up by I/O is
    /// served, and the timer still fires.
    #[test]
    fn a_pending_timer_still_fires_after_many_io_wake_ups() {
        const ROUND_TRIPS: usize = 200;
        let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
        let (done_tx, done_rx) = mpsc::channel::<&'static str>();
        let executor = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .preempt_timer(PREEMPTION_PERIOD)
                .spawn(move || async move {
                    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    let _ = addr_tx.send(listener.local_addr().expect("local addr"));
                    let mut stream = listener.accept().await.expect("accept");
                    let timer = glommio::spawn_local(async {
                        glommio::timer::sleep(Duration::from_millis(300)).await;
                        "timer"
                    });
                    let mut byte = [0u8; 1];
                    for _ in 0..ROUND_TRIPS {
                        stream.read_exact(&mut byte).await.expect("read");
                        stream.write_all(&byte).await.expect("echo");
                    }
                    let _ = done_tx.send(timer.await);
                })
                .expect("executor")
                .join()
                .expect("executor ran")
        });
        let addr = addr_rx
            .recv_timeout(OUTCOME_DEADLINE)
            .expect("executor started");
        let mut client = TcpStream::connect(addr).expect("connect");
        client.set_nodelay(true).expect("nodelay");
        client
            .set_read_timeout(Some(OUTCOME_DEADLINE))
            .expect("read timeout");
        let mut echo = [0u8; 1];
        for i in 0..ROUND_TRIPS {
            client.write_all(&[i as u8]).expect("write");
            std::io::Read::read_exact(&mut client, &mut echo).expect("echo");
            assert_eq!(echo[0], i as u8);
        }
        let fired = done_rx
            .recv_timeout(OUTCOME_DEADLINE)
            .expect("the timer did not fire after the I/O wake-ups");
        assert_eq!(fired, "timer");
        executor.join().expect("executor thread");
    }
}
