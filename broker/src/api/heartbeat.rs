//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use crate::group::{self, GroupAnswer, GroupCall};
use crate::shard::Shard;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::rc::Rc;

pub async fn handle(
    shard: &Rc<Shard>,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let call = GroupCall::Heartbeat {
        group: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
    };
    let code = match group::call(shard, call).await {
        GroupAnswer::Heartbeat(code) => code,
        _ => ResponseError::CoordinatorNotAvailable.code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}
