//! What every core of this broker shares: the controller handle (the
//! metadata image, calls to the active controller), this broker's
//! registration, its block of producer ids, how far each core has applied
//! the metadata log, and the connection count. Produce and fetch never
//! take a lock here: each core keeps its own copy of the image (core.rs).

use crate::metadata::topics::Topic;
use controller::{Controller, MetadataImage};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open client connections per client IP.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

pub struct Cluster {
    pub node_id: i32,
    pub controller: Controller,
    /// Open client connections on all cores (`max.connections` is per broker).
    connections: Arc<AtomicUsize>,
    /// Open client connections per client IP, on all cores
    /// (`max.connections.per.ip`); touched at accept and close only.
    per_ip: PerIp,
    /// This broker's epoch (the index of its registration); 0 until registered.
    broker_epoch: AtomicU64,
    /// Unfenced by the controller (registered and caught up).
    unfenced: AtomicBool,
    /// The metadata index each core has applied to its shard.
    applied: Vec<AtomicU64>,
    /// (next, end) of the producer-id block the controller gave this broker.
    producer_ids: Mutex<(i64, i64)>,
    /// The log directories and their health, for every core.
    pub log_dirs: Arc<crate::log_dirs::LogDirs>,
}

impl Cluster {
    pub fn new(
        node_id: i32,
        controller: Controller,
        cores: usize,
        log_dirs: Arc<crate::log_dirs::LogDirs>,
    ) -> Arc<Cluster> {
        Arc::new(Cluster {
            node_id,
            controller,
            connections: Arc::new(AtomicUsize::new(0)),
            per_ip: Arc::default(),
            broker_epoch: AtomicU64::new(0),
            unfenced: AtomicBool::new(false),
            applied: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            producer_ids: Mutex::new((0, 0)),
            log_dirs,
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.image().topic(name).map(Topic::from_image)
    }

    pub fn topics(&self) -> Vec<Topic> {
        self.image()
            .topics
            .values()
            .map(Topic::from_image)
            .collect()
    }

    pub fn broker_epoch(&self) -> u64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    pub fn set_broker_epoch(&self, epoch: u64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    pub fn is_unfenced(&self) -> bool {
        self.unfenced.load(Ordering::Acquire)
    }

    pub fn set_unfenced(&self, unfenced: bool) {
        self.unfenced.store(unfenced, Ordering::Release);
    }

    pub fn set_applied(&self, core: usize, index: u64) {
        if let Some(applied) = self.applied.get(core) {
            applied.fetch_max(index, Ordering::AcqRel);
        }
    }

    /// The metadata index every core has applied.
    pub fn applied_everywhere(&self) -> u64 {
        self.applied
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// Waits until every core has applied `index` (so an answer to a topic
    /// change is true on this broker when given); false after `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.applied_everywhere() < index {
            if Instant::now() >= deadline {
                return false;
            }
            // Metadata changes are rare and apply in microseconds; a short
            // poll keeps the cores free of another wake-up channel.
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    /// The next id of this broker's block, if any is left.
    pub fn take_producer_id(&self) -> Option<i64> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        (ids.0 < ids.1).then(|| {
            ids.0 += 1;
            ids.0 - 1
        })
    }

    pub fn add_producer_ids(&self, first: i64, count: i64) {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.0 >= ids.1 {
            *ids = (first, first + count);
        }
    }

    /// Counts a new connection from `ip` unless `max` are open in all or
    /// `ip_max` from this IP; the slot is given back when the returned
    /// guard drops.
    pub fn take_connection(
        &self,
        max: usize,
        ip: Option<IpAddr>,
        ip_max: usize,
    ) -> Result<ConnectionSlot, ConnectionRefused> {
        let taken = self
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            });
        if taken.is_err() {
            return Err(ConnectionRefused::Total);
        }
        let slot = ConnectionSlot {
            total: self.connections.clone(),
            ip: None,
        };
        let Some(ip) = ip else {
            return Ok(slot);
        };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_ip.entry(ip).or_insert(0);
        if *open >= ip_max {
            if *open == 0 {
                per_ip.remove(&ip);
            }
            return Err(ConnectionRefused::PerIp); // `slot` gives the total back
        }
        *open += 1;
        let mut slot = slot;
        slot.ip = Some((ip, self.per_ip.clone()));
        Ok(slot)
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// `max.connections`
    Total,
    /// `max.connections.per.ip` or its override for the client's IP.
    PerIp,
}

pub struct ConnectionSlot {
    total: Arc<AtomicUsize>,
    ip: Option<(IpAddr, PerIp)>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if let Some((ip, per_ip)) = &self.ip {
            let mut per_ip = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(open) = per_ip.get_mut(ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(ip);
                }
            }
        }
    }
}
