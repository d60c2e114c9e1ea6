//! DeleteGroups (v0-2): removes empty groups and their committed offsets.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in request.groups_names {
        let call = GroupCall::Delete {
            group: group_id.to_string(),
        };
        let code = if !ctx.may(core, operation::DELETE, resource::GROUP, &group_id) {
            ResponseError::GroupAuthorizationFailed.code()
        } else {
            match core.group_call(call).await {
                GroupAnswer::Delete(code) => code,
                other => other.error().code(),
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
