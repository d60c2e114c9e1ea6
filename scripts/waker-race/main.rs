//! Races a waker dropped on a foreign thread against the task's own
//! executor dropping the finished task's handle: the glommio bug behind the
//! crash soak's double free (third_party/glommio/SLUICE-PATCH.md, third
//! patch). Each round's task ends at once leaving a waker clone with the
//! dropper thread, which drops it just as the executor drops the handle.
//! Built and run by scripts/waker-race.sh against a copy of the vendored
//! glommio; glommio's own reference-count assertion ("Waker invariant
//! broken") reports a task touched after it was freed.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let go = Arc::new(AtomicUsize::new(0));
    let (to_dropper, wakers) = std::sync::mpsc::sync_channel::<(usize, std::task::Waker)>(1);
    let go2 = go.clone();
    let dropper = std::thread::spawn(move || {
        let mut n = 0usize;
        for (round, w) in wakers {
            // Drop the waker when the owner is about to drop the handle.
            while go2.load(Ordering::Acquire) < round {
                std::hint::spin_loop();
            }
            drop(w);
            n += 1;
        }
        n
    });
    let finished = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut finished = 0usize;
            for round in 1..=rounds {
                let done = std::rc::Rc::new(std::cell::Cell::new(false));
                let (tx, flag) = (to_dropper.clone(), done.clone());
                let task = glommio::spawn_local(std::future::poll_fn(move |cx| {
                    let _ = tx.send((round, cx.waker().clone()));
                    flag.set(true);
                    std::task::Poll::Ready(())
                }));
                while !done.get() {
                    futures_lite::future::yield_now().await;
                }
                // Let the task's own reference go (it is released after the poll).
                futures_lite::future::yield_now().await;
                go.store(round, Ordering::Release);
                for _ in 0..(round % 64) {
                    std::hint::spin_loop();
                }
                drop(task);
                finished += 1;
            }
            finished
        })
        .expect("executor")
        .join()
        .expect("join");
    println!("finished {finished} dropped {}", dropper.join().expect("dropper"));
}
