//! SyncGroup: the leader hands in the assignment; every member gets its
//! share once the leader's arrives.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = ctx.version;
    if !ctx.may(core, operation::READ, resource::GROUP, &request.group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let call = GroupCall::Sync {
        group: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let answer = match core.group_call(call).await {
        GroupAnswer::Sync(answer) => answer,
        other => Err(other.error()),
    };
    match answer {
        Ok((protocol_type, protocol_name, assignment)) => {
            let response = SyncGroupResponse::default().with_assignment(assignment);
            if version >= 5 {
                response
                    .with_protocol_type(protocol_type.map(StrBytes::from_string))
                    .with_protocol_name(protocol_name.map(StrBytes::from_string))
            } else {
                response
            }
        }
        Err(error) => SyncGroupResponse::default().with_error_code(error.code()),
    }
}
