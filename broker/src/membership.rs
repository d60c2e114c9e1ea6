//! This broker's membership in the cluster (Kafka's BrokerLifecycleManager):
//! registers with the active controller under a fresh incarnation, then
//! heartbeats every `broker.heartbeat.interval.ms` with the metadata index
//! its cores have applied; the controller unfences it once that index
//! reaches its registration, and fences it when heartbeats stop for
//! `broker.session.timeout.ms`. Each heartbeat names the replicas in
//! offline log directories, which the controller takes out of their ISR
//! and leadership. Once first unfenced it migrates the topics
//! of the single-node registry file, creates `__consumer_offsets` when
//! enough brokers are up, and says the broker is ready.

use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use crate::group::store::OFFSETS_TOPIC;
use crate::metadata::topics::TopicStore;
use controller::{ControllerError, NewTopic, Request, Response};
use std::rc::Rc;
use std::time::Duration;

pub async fn run(core: Rc<Core>) {
    let config = &core.config;
    let interval = Duration::from_millis(config.cluster.heartbeat_interval_ms);
    let incarnation: u128 = rand::random();
    let mut announced = false;
    let mut last_error = String::new();
    'register: loop {
        let request = Request::RegisterBroker {
            broker_id: config.node_id,
            incarnation,
            endpoints: config.endpoints(),
            rack: config.cluster.rack.clone(),
        };
        let epoch = match core.cluster.controller.call(request, interval * 2).await {
            Ok((_, Response::Registered { broker_epoch })) => broker_epoch,
            Ok(_) => continue,
            Err(error) => {
                note(&mut last_error, &error, "registration");
                glommio::timer::sleep(interval.min(Duration::from_millis(500))).await;
                continue;
            }
        };
        core.cluster.set_broker_epoch(epoch);
        tracing::info!(
            node = config.node_id,
            epoch,
            "registered with the controller"
        );
        // Caught up with our own registration before the first heartbeat,
        // so it can unfence us at once.
        core.cluster.wait_applied(epoch, interval).await;
        let mut reported = 0;
        loop {
            let offline_replicas = core.offline_replicas().await;
            if offline_replicas.len() != reported {
                reported = offline_replicas.len();
                tracing::warn!(
                    partitions = reported,
                    "telling the controller of replicas in offline log directories: it moves their leadership and ISR membership away"
                );
            }
            let request = Request::Heartbeat {
                broker_id: config.node_id,
                broker_epoch: epoch,
                metadata_offset: core.cluster.applied_everywhere(),
                offline_replicas,
            };
            match core.cluster.controller.call(request, interval * 2).await {
                Ok((index, Response::Heartbeat { is_fenced, .. })) => {
                    if is_fenced == core.cluster.is_unfenced() {
                        tracing::info!(node = config.node_id, fenced = is_fenced, "broker state");
                    }
                    core.cluster.set_unfenced(!is_fenced);
                    if !is_fenced {
                        core.cluster.wait_applied(index, interval).await;
                        if !announced {
                            migrate_legacy_topics(&core).await;
                        }
                        if core.topic(OFFSETS_TOPIC).is_none() && enough_for_offsets(&core) {
                            core.ensure_offsets_topic().await;
                        }
                        if !announced {
                            announced = true;
                            tracing::info!(listen = %config.listen, cores = config.cores, node = config.node_id, data_dir = %config.data_dir.display(), "sluice broker ready");
                        }
                        last_error.clear();
                    }
                }
                Ok(_) => {}
                Err(
                    error @ (ControllerError::StaleBrokerEpoch { .. }
                    | ControllerError::BrokerNotRegistered(_)),
                ) => {
                    tracing::warn!(%error, "registering again");
                    core.cluster.set_unfenced(false);
                    continue 'register;
                }
                Err(error) => note(&mut last_error, &error, "heartbeat"),
            }
            glommio::timer::sleep(interval).await;
        }
    }
}

/// Logs a failure once until it changes (a cluster that is forming fails
/// many times in a row the same way).
fn note(last: &mut String, error: &ControllerError, what: &str) {
    let text = error.to_string();
    if *last != text {
        tracing::warn!(error = %text, "{what} with the controller failed; retrying");
        *last = text;
    }
}

/// `__consumer_offsets` waits for as many brokers as its replication factor
/// wants (capped by the voters, so a small cluster does not wait forever);
/// FindCoordinator creates it with fewer when a group needs it first.
fn enough_for_offsets(core: &Core) -> bool {
    let cluster = &core.config.cluster;
    let voters = cluster.voters_or_self(core.config.node_id).len() as i32;
    let wanted = cluster.offsets_replication_factor.min(voters).max(1);
    core.image().unfenced_brokers().count() as i32 >= wanted
}

/// Topics of the single-node registry file (before the controller) become
/// topics of the metadata log, on this broker, with their configs; their
/// partition directories are already here. The file is then retired.
async fn migrate_legacy_topics(core: &Core) {
    let store = match TopicStore::open(&core.config.data_dir) {
        Ok(store) => store,
        Err(error) => {
            tracing::error!(%error, "cannot read the old topic registry; not migrated");
            return;
        }
    };
    let topics: Vec<NewTopic> = store
        .all()
        .filter(|t| core.topic(&t.name).is_none())
        .map(|t| {
            let mut configs = t.configs.clone();
            if t.name == OFFSETS_TOPIC {
                configs
                    .entry("cleanup.policy".into())
                    .or_insert_with(|| "compact".into());
            }
            NewTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: 1,
                assignments: vec![vec![core.config.node_id]; t.partitions as usize],
                configs,
            }
        })
        .collect();
    if !topics.is_empty() {
        let count = topics.len();
        let request = Request::CreateTopics {
            topics,
            validate_only: false,
        };
        match core.metadata_write(request, METADATA_WRITE_TIMEOUT).await {
            Ok(_) => tracing::info!(
                topics = count,
                "migrated the old topic registry into the metadata log"
            ),
            Err(error) => {
                tracing::error!(%error, "migrating the old topic registry failed; will retry at next start");
                return;
            }
        }
    }
    if let Err(error) = store.retire() {
        tracing::error!(%error, "cannot retire the old topic registry");
    }
}
