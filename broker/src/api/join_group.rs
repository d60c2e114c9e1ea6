//! JoinGroup: enter a group's join round; answered when the round
//! completes (every member rejoined, or the rebalance timeout).

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::coordinator::JoinArgs;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = ctx.version;
    if !ctx.may(core, operation::READ, resource::GROUP, &request.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let args = JoinArgs {
        group: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        // Who sent the request, for DescribeGroups.
        client_id: ctx.client_id.clone(),
        client_host: ctx.connection.client_host(),
        require_known_member_id: version >= 4,
    };
    let joined = match core.group_call(GroupCall::Join(args)).await {
        GroupAnswer::Join(joined) => joined,
        other => {
            return JoinGroupResponse::default()
                .with_error_code(other.error().code())
                .with_generation_id(-1)
                .with_protocol_name((version < 7).then(StrBytes::default))
        }
    };
    let members = joined
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(id))
                .with_metadata(metadata);
            if version >= 5 {
                member.with_group_instance_id(instance.map(StrBytes::from_string))
            } else {
                member
            }
        })
        .collect();
    let protocol_name = joined.protocol.map(StrBytes::from_string);
    let response = JoinGroupResponse::default()
        .with_error_code(joined.error)
        .with_generation_id(joined.generation)
        // Before v7 the protocol name is not nullable.
        .with_protocol_name(if version >= 7 {
            protocol_name
        } else {
            Some(protocol_name.unwrap_or_default())
        })
        .with_leader(StrBytes::from_string(joined.leader))
        .with_member_id(StrBytes::from_string(joined.member_id))
        .with_members(members);
    if version >= 7 {
        response.with_protocol_type(joined.protocol_type.map(StrBytes::from_string))
    } else {
        response
    }
}
