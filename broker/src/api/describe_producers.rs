//! DescribeProducers: the idempotent producers a partition remembers
//! (producer id, epoch, last sequence), from its owning core. Sluice
//! keeps no producer timestamps and has no transactions: last timestamp
//! -1, coordinator epoch -1, no open transaction (-1).

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::read_error;
use controller::acl::{operation, resource};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let allowed = ctx.may(core, operation::READ, resource::TOPIC, &name);
        let mut partitions = Vec::new();
        for index in topic.partition_indexes {
            let response = PartitionResponse::default().with_partition_index(index);
            if !allowed {
                let code = ResponseError::TopicAuthorizationFailed.code();
                partitions.push(response.with_error_code(code));
                continue;
            }
            partitions.push(match core.producers_of(name.clone(), index).await {
                Ok(producers) => response.with_active_producers(
                    producers
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(-1)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(-1)
                        })
                        .collect(),
                ),
                Err(error) => response.with_error_code(read_error(&error).code()),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
