//! FindCoordinator: this broker coordinates every group (the owning core
//! is picked inside, so clients always get this node). v4 batches keys.
//! Transactions are not served: a transaction coordinator (key type 1) is
//! refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED and a message saying
//! so. Why that code: the Java producer's `TransactionManager.
//! FindCoordinatorHandler` re-enqueues on any retriable error (the
//! COORDINATOR_NOT_AVAILABLE answered before), so `initTransactions()`
//! hung until `max.block.ms`; TRANSACTIONAL_ID_AUTHORIZATION_FAILED is its
//! one named fatal error (`fatalError`), so the call fails at once.
//! librdkafka's `rd_kafka_txn_handle_FindCoordinator` (rdkafka_txnmgr.c)
//! is the same: that code is fatal, any other re-queries every 500 ms
//! (tests/clients/test_admin_apis.py checks librdkafka 2.16). It is also
//! what InitProducerId answers a transactional id (init_producer_id.rs).

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::store::OFFSETS_TOPIC;
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

const KEY_TYPE_GROUP: i8 = 0;

const TRANSACTIONS_REFUSED: &str = "Transactions are not supported by Sluice yet.";

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = ctx.version;
    // Only a caller that may describe one of the groups asked for makes
    // the broker create `__consumer_offsets`.
    let keys: Vec<&str> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.as_str())
            .collect()
    } else {
        vec![request.key.as_str()]
    };
    let may_describe_any = keys
        .iter()
        .any(|key| ctx.may(core, operation::DESCRIBE, resource::GROUP, key));
    if request.key_type == KEY_TYPE_GROUP && may_describe_any && core.topic(OFFSETS_TOPIC).is_none()
    {
        core.ensure_offsets_topic().await;
    }
    let image = core.image();
    let coordinator_of = |key: &str| -> Option<(BrokerId, StrBytes, i32)> {
        let offsets = image.topic(OFFSETS_TOPIC)?;
        let partition = crate::group::store::partition_for(key, offsets.partitions.len() as i32);
        let leader = offsets.partition(partition)?.leader;
        let broker = image.brokers.get(&leader).filter(|b| !b.fenced)?;
        let endpoint = broker.endpoint(&ctx.connection.listener)?;
        Some((
            BrokerId(leader),
            StrBytes::from_string(endpoint.host.clone()),
            i32::from(endpoint.port),
        ))
    };
    let answer = |key: &str| -> (i16, Option<String>) {
        if request.key_type != KEY_TYPE_GROUP {
            let reason = format!(
                "FindCoordinator key type {}: {TRANSACTIONS_REFUSED}",
                request.key_type
            );
            core.refusals
                .warn_once(&ctx.client_id, ctx.connection.peer, &reason);
            (
                ResponseError::TransactionalIdAuthorizationFailed.code(),
                Some(TRANSACTIONS_REFUSED.to_string()),
            )
        } else if key.is_empty() {
            (
                ResponseError::InvalidRequest.code(),
                Some("Empty group id.".to_string()),
            )
        } else if !ctx.may(core, operation::DESCRIBE, resource::GROUP, key) {
            (
                ResponseError::GroupAuthorizationFailed.code(),
                Some("Group authorization failed.".to_string()),
            )
        } else if coordinator_of(key).is_none() {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                Some("The coordinator is not available.".to_string()),
            )
        } else {
            (0, None)
        }
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error_code, message) = answer(key);
                let coordinator = Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(error_code)
                    .with_error_message(message.map(StrBytes::from_string));
                if let Some((node, host, port)) = coordinator_of(key).filter(|_| error_code == 0) {
                    coordinator
                        .with_node_id(node)
                        .with_host(host)
                        .with_port(port)
                } else {
                    coordinator.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (error_code, message) = answer(&request.key);
    let response = FindCoordinatorResponse::default().with_error_code(error_code);
    let response = if version >= 1 {
        response.with_error_message(message.map(StrBytes::from_string))
    } else {
        response
    };
    if let Some((node, host, port)) = coordinator_of(&request.key).filter(|_| error_code == 0) {
        response.with_node_id(node).with_host(host).with_port(port)
    } else {
        response.with_node_id(BrokerId(-1)).with_port(-1)
    }
}
