//! Partition -> owning core, and running work on another core.
//!
//! Every core accepts connections (SO_REUSEPORT), but a partition lives on
//! exactly one core. Work on another core's partition is sent there as a
//! job: a `Send` closure over the core's state, run as a task of that core,
//! whose result comes back on a one-shot channel (Seastar's `submit_to`).
//! The channels are flume's: runtime-agnostic, and glommio wakes a task
//! from a foreign thread through its notifier.
//!
//! This module knows nothing of what a core holds: it is generic over the
//! core's state `T`, so it sits below everything that routes and imports
//! nothing from the broker. What crosses cores is whatever the job returns:
//! broker types (`partition::Produced`, ...), never Kafka wire structs.
//!
//! The request loop on each core never sends to another core itself (it
//! only spawns local tasks), so the bounded queues cannot form a cycle.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Jobs queued for one core before senders wait (back-pressure).
pub const CORE_REQUESTS_QUEUED_MAX: usize = 4096;

/// Work for a core: built on the sending core (so `Send`), run on the
/// receiving one against its state.
pub type Job<T> = Box<dyn FnOnce(Rc<T>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The core that owns a partition. Consecutive partitions of a topic go to
/// consecutive cores; the topic's hash picks where it starts, so topics
/// with few partitions do not all land on core 0. Stable across restarts
/// for the same core count (ownership is not persisted: each core opens
/// what it owns at start-up).
pub fn owner_of(topic: &str, partition: i32, cores: usize) -> usize {
    let start = crc32c::crc32c(topic.as_bytes()) as usize;
    start.wrapping_add(partition as u32 as usize) % cores.max(1)
}

pub struct Router<T> {
    core: usize,
    peers: Vec<flume::Sender<Job<T>>>,
}

impl<T> Clone for Router<T> {
    fn clone(&self) -> Self {
        Router {
            core: self.core,
            peers: self.peers.clone(),
        }
    }
}

impl<T: 'static> Router<T> {
    /// One router (with its core's receiving end) per core.
    pub fn mesh(cores: usize) -> Vec<(Router<T>, flume::Receiver<Job<T>>)> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores)
            .map(|_| flume::bounded(CORE_REQUESTS_QUEUED_MAX))
            .unzip();
        receivers
            .into_iter()
            .enumerate()
            .map(|(core, receiver)| {
                (
                    Router {
                        core,
                        peers: senders.clone(),
                    },
                    receiver,
                )
            })
            .collect()
    }

    pub fn core(&self) -> usize {
        self.core
    }

    pub fn cores(&self) -> usize {
        self.peers.len()
    }

    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        owner_of(topic, partition, self.peers.len())
    }

    pub fn is_local(&self, topic: &str, partition: i32) -> bool {
        self.owner(topic, partition) == self.core
    }

    /// Runs `work` on `core` (which must not be this one: run local work
    /// directly) and awaits its result; None if that core has stopped
    /// (shutdown) and will not answer.
    pub async fn call<R, F, Fut>(&self, core: usize, work: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (reply, answer) = flume::bounded(1);
        let job: Job<T> = Box::new(move |state| {
            Box::pin(async move {
                // Fails only when the asking core gave up (shutdown).
                let _ = reply.send(work(state).await);
            })
        });
        self.peers.get(core)?.send_async(job).await.ok()?;
        answer.recv_async().await.ok()
    }
}

impl<T: 'static> Router<T> {
    /// `call` from a thread that is not a core (the admin endpoint's),
    /// blocking it, not a core; None if `core` did not take the job or
    /// answer within `timeout`.
    pub fn call_blocking<R, F, Fut>(
        &self,
        core: usize,
        work: F,
        timeout: std::time::Duration,
    ) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let deadline = std::time::Instant::now() + timeout;
        let (reply, answer) = flume::bounded(1);
        let job: Job<T> = Box::new(move |state| {
            Box::pin(async move {
                let _ = reply.send(work(state).await);
            })
        });
        self.peers.get(core)?.send_deadline(job, deadline).ok()?;
        answer.recv_deadline(deadline).ok()
    }
}

/// Runs the jobs other cores send this one, until every sender is gone.
/// Each job runs as its own task, so a slow one (an fdatasync, a long-poll
/// wait) never holds up the rest.
pub async fn serve<T: 'static>(state: Rc<T>, jobs: flume::Receiver<Job<T>>) {
    while let Ok(job) = jobs.recv_async().await {
        glommio::spawn_local(job(state.clone())).detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_all_cores() {
        for cores in 1..=8 {
            let mut seen = vec![0usize; cores];
            for partition in 0..(cores as i32 * 3) {
                let owner = owner_of("orders", partition, cores);
                assert!(owner < cores);
                seen[owner] += 1;
            }
            assert!(seen.iter().all(|&n| n == 3), "{cores} cores: {seen:?}");
        }
    }

    #[test]
    fn hostile_partition_numbers_still_map_to_a_core() {
        for partition in [i32::MIN, -1, i32::MAX] {
            assert!(owner_of("t", partition, 3) < 3);
        }
    }

    #[test]
    fn owner_is_stable() {
        assert_eq!(owner_of("t", 5, 4), owner_of("t", 5, 4));
    }

    #[test]
    fn a_job_runs_on_the_other_core_against_its_state() {
        let mut mesh = Router::<usize>::mesh(2);
        let (router1, jobs1) = mesh.pop().expect("core 1");
        let (router0, _jobs0) = mesh.pop().expect("core 0");
        let other = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { serve(Rc::new(41usize), jobs1).await })
            .expect("executor");
        let answer = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                router0
                    .call(router1.core(), |state: Rc<usize>| async move { *state + 1 })
                    .await
            })
            .expect("executor")
            .join()
            .expect("join");
        assert_eq!(answer, Some(42));
        drop(mesh);
        other.join().expect("serve stops once every sender is gone");
    }
}
