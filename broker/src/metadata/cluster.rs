//! What every core of this broker shares: the topic registry and the
//! producer-id counter. Only metadata paths (Metadata, CreateTopics, configs,
//! InitProducerId) touch it; produce and fetch go straight to the owning
//! core's partitions and never take this lock.

use crate::error::MetadataError;
use crate::metadata::topics::{Topic, TopicStore};
use kafka_protocol::error::ResponseError;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

struct Registry {
    store: TopicStore,
    /// Names whose partitions are being opened on their cores: reserved so
    /// that two cores cannot create the same topic at once.
    creating: HashSet<String>,
}

pub struct Cluster {
    registry: Mutex<Registry>,
    next_producer_id: AtomicI64,
    /// Open client connections on all cores (`max.connections` is per broker).
    connections: Arc<AtomicUsize>,
}

impl Cluster {
    pub fn open(data_dir: &Path) -> Result<Arc<Cluster>, MetadataError> {
        let store = TopicStore::open(data_dir)?;
        // Idempotent producer state is not persisted, so ids must not repeat
        // across restarts: start from the clock.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as i64);
        Ok(Arc::new(Cluster {
            registry: Mutex::new(Registry {
                store,
                creating: HashSet::new(),
            }),
            next_producer_id: AtomicI64::new(seed << 8),
            connections: Arc::new(AtomicUsize::new(0)),
        }))
    }

    /// The lock is only ever held for in-memory work plus the registry's
    /// small file write, never across an `.await`. A panic while holding it
    /// cannot leave the registry half-updated (insert/remove are single map
    /// operations), so a poisoned lock is still usable.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.registry().store.get(name).cloned()
    }

    pub fn topics(&self) -> Vec<Topic> {
        self.registry().store.all().cloned().collect()
    }

    /// Reserves `name` for creation: TOPIC_ALREADY_EXISTS if it exists or
    /// another core is creating it. The reservation ends when the guard drops.
    pub fn reserve(self: &Arc<Self>, name: &str) -> Result<Reservation, ResponseError> {
        let mut registry = self.registry();
        if registry.store.get(name).is_some() || !registry.creating.insert(name.to_string()) {
            return Err(ResponseError::TopicAlreadyExists);
        }
        Ok(Reservation {
            cluster: self.clone(),
            name: name.to_string(),
        })
    }

    /// Adds or replaces a topic and persists the registry.
    pub fn insert(&self, topic: Topic) -> Result<(), MetadataError> {
        self.registry().store.insert(topic)
    }

    pub fn remove(&self, name: &str) -> Result<Option<Topic>, MetadataError> {
        self.registry().store.remove(name)
    }

    pub fn allocate_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Cluster {
    /// Counts a new connection unless `max` are open; the slot is given back
    /// when the returned guard drops.
    pub fn take_connection(&self, max: usize) -> Option<ConnectionSlot> {
        let taken = self
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            });
        taken.ok().map(|_| ConnectionSlot(self.connections.clone()))
    }
}

pub struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Reservation {
    cluster: Arc<Cluster>,
    name: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.cluster.registry().creating.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_can_be_reserved_once_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::open(dir.path()).expect("open");
        let first = cluster.reserve("t").expect("free");
        assert_eq!(
            cluster.reserve("t").err(),
            Some(ResponseError::TopicAlreadyExists)
        );
        drop(first);
        assert!(cluster.reserve("t").is_ok());
    }

    #[test]
    fn an_existing_topic_cannot_be_reserved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::open(dir.path()).expect("open");
        cluster
            .insert(Topic {
                name: "t".into(),
                partitions: 1,
                configs: Default::default(),
            })
            .expect("insert");
        assert_eq!(
            cluster.reserve("t").err(),
            Some(ResponseError::TopicAlreadyExists)
        );
    }

    #[test]
    fn connections_are_capped_and_slots_given_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::open(dir.path()).expect("open");
        let first = cluster.take_connection(2).expect("1 of 2");
        let _second = cluster.take_connection(2).expect("2 of 2");
        assert!(cluster.take_connection(2).is_none());
        drop(first);
        assert!(cluster.take_connection(2).is_some());
    }

    #[test]
    fn producer_ids_are_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::open(dir.path()).expect("open");
        let a = cluster.allocate_producer_id();
        let b = cluster.allocate_producer_id();
        assert_ne!(a, b);
    }
}
