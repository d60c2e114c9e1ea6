//! LeaveGroup: one member (v0-2) or a batch of members, by member id or
//! group.instance.id (v3+).

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version;
    if !ctx.may(core, operation::READ, resource::GROUP, &request.group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let identities: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let call = GroupCall::Leave {
        group: request.group_id.to_string(),
        identities: identities.clone(),
    };
    let errors = match core.group_call(call).await {
        GroupAnswer::Leave(errors) => errors,
        other => vec![other.error().code(); identities.len()],
    };
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(errors.first().copied().unwrap_or(0));
    }
    let members = request
        .members
        .into_iter()
        .zip(errors)
        .map(|(member, error_code)| {
            MemberResponse::default()
                .with_member_id(member.member_id)
                .with_group_instance_id(member.group_instance_id)
                .with_error_code(error_code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
