//! ListGroups (v0-4): every group of every core, optionally filtered by
//! state (v4).

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource, CLUSTER_NAME};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = ctx.version;
    let GroupAnswer::List(groups) = core.group_call(GroupCall::List).await else {
        return ListGroupsResponse::default();
    };
    let wanted: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    // DESCRIBE on the cluster lists every group; otherwise only the
    // groups the caller may describe (Kafka's rule).
    let authorizer = core.authorizer();
    let caller = ctx.caller();
    let all = authorizer.allows(
        &caller,
        operation::DESCRIBE,
        resource::CLUSTER,
        CLUSTER_NAME,
    );
    let listed = groups
        .into_iter()
        .filter(|(_, _, state)| wanted.is_empty() || wanted.contains(&state.to_lowercase()))
        .filter(|(id, _, _)| {
            all || authorizer.allows(&caller, operation::DESCRIBE, resource::GROUP, id)
        })
        .map(|(id, protocol_type, state)| {
            let group = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type));
            if version >= 4 {
                group.with_group_state(StrBytes::from_static_str(state))
            } else {
                group
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}
