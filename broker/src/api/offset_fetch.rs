//! OffsetFetch (v1-9): committed offsets of one group (v1-7) or of several
//! (v8+), for the partitions asked or, with null topics, all of them.
//! A partition with no commit answers offset -1.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::group::{FetchedOffsets, GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

/// Topics named but not describable: answered TOPIC_AUTHORIZATION_FAILED.
type Denied = Vec<(String, Vec<i32>)>;

/// The group's offsets the caller may see: DESCRIBE on the group (else
/// GROUP_AUTHORIZATION_FAILED), and on each topic (topics named without it
/// come back in `Denied`; with all topics asked, they are left out).
async fn fetch_group(
    ctx: &RequestContext,
    core: &Rc<Core>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<(FetchedOffsets, Denied), i16> {
    if !ctx.may(core, operation::DESCRIBE, resource::GROUP, &group) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    let authorizer = core.authorizer();
    let may =
        |topic: &str| authorizer.allows(&ctx.caller(), operation::DESCRIBE, resource::TOPIC, topic);
    let (topics, denied) = match topics {
        None => (None, Vec::new()),
        Some(topics) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = topics.into_iter().partition(|(t, _)| may(t));
            (Some(allowed), denied)
        }
    };
    match core.group_call(GroupCall::Fetch { group, topics }).await {
        GroupAnswer::Fetch(mut offsets) => {
            offsets.retain(|(topic, _)| may(topic));
            Ok((offsets, denied))
        }
        other => Err(other.error().code()),
    }
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.version;
    if version >= 8 {
        let mut groups = Vec::new();
        for wanted in request.groups {
            let topics = wanted.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let group = OffsetFetchResponseGroup::default().with_group_id(wanted.group_id.clone());
            groups.push(
                match fetch_group(ctx, core, wanted.group_id.to_string(), topics).await {
                    Ok((offsets, denied)) => group.with_topics(multi_group_topics(offsets, denied)),
                    Err(code) => group.with_error_code(code),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let GroupId(group) = request.group_id;
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    match fetch_group(ctx, core, group.to_string(), topics).await {
        Ok((offsets, denied)) => OffsetFetchResponse::default()
            .with_topics(single_group_topics(offsets, denied, version)),
        // The top-level error code exists from v2 on.
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
        Err(_) => OffsetFetchResponse::default(),
    }
}

fn single_group_topics(
    offsets: FetchedOffsets,
    denied: Denied,
    version: i16,
) -> Vec<OffsetFetchResponseTopic> {
    let refused = denied.into_iter().map(|(name, partitions)| {
        OffsetFetchResponseTopic::default()
            .with_name(topic_name(&name))
            .with_partitions(
                partitions
                    .into_iter()
                    .map(|index| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(index)
                            .with_committed_offset(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    })
                    .collect(),
            )
    });
    offsets
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, committed)| {
                            let answer =
                                OffsetFetchResponsePartition::default().with_partition_index(index);
                            match committed {
                                Some(c) => {
                                    let answer = answer
                                        .with_committed_offset(c.offset)
                                        .with_metadata(Some(StrBytes::from_string(c.metadata)));
                                    if version >= 5 {
                                        answer.with_committed_leader_epoch(c.leader_epoch)
                                    } else {
                                        answer
                                    }
                                }
                                None => answer
                                    .with_committed_offset(-1)
                                    .with_metadata(Some(StrBytes::default())),
                            }
                        })
                        .collect(),
                )
        })
        .chain(refused)
        .collect()
}

fn multi_group_topics(offsets: FetchedOffsets, denied: Denied) -> Vec<OffsetFetchResponseTopics> {
    let refused = denied.into_iter().map(|(name, partitions)| {
        OffsetFetchResponseTopics::default()
            .with_name(topic_name(&name))
            .with_partitions(
                partitions
                    .into_iter()
                    .map(|index| {
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(index)
                            .with_committed_offset(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    })
                    .collect(),
            )
    });
    offsets
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopics::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, committed)| {
                            let answer = OffsetFetchResponsePartitions::default()
                                .with_partition_index(index);
                            match committed {
                                Some(c) => answer
                                    .with_committed_offset(c.offset)
                                    .with_committed_leader_epoch(c.leader_epoch)
                                    .with_metadata(Some(StrBytes::from_string(c.metadata))),
                                None => answer
                                    .with_committed_offset(-1)
                                    .with_metadata(Some(StrBytes::default())),
                            }
                        })
                        .collect(),
                )
        })
        .chain(refused)
        .collect()
}
