//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if !ctx.may(core, operation::READ, resource::GROUP, &request.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let call = GroupCall::Heartbeat {
        group: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
    };
    let code = match core.group_call(call).await {
        GroupAnswer::Heartbeat(code) => code,
        other => other.error().code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}
