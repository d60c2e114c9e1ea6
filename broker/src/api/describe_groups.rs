//! DescribeGroups (v0-5): state, protocol, and members with their
//! subscription metadata and assignments. An unknown group is "Dead".

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version;
    let mut described = Vec::new();
    for group_id in request.groups {
        let call = GroupCall::Describe {
            group: group_id.to_string(),
        };
        let result = DescribedGroup::default().with_group_id(group_id);
        if !ctx.may(core, operation::DESCRIBE, resource::GROUP, &result.group_id) {
            described.push(result.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
            continue;
        }
        described.push(match core.group_call(call).await {
            GroupAnswer::Describe(Some(view)) => result
                .with_group_state(StrBytes::from_static_str(view.state))
                .with_protocol_type(StrBytes::from_string(view.protocol_type))
                .with_protocol_data(StrBytes::from_string(view.protocol))
                .with_members(
                    view.members
                        .into_iter()
                        .map(|m| {
                            let member = DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.with_group_instance_id(
                                    m.instance_id.map(StrBytes::from_string),
                                )
                            } else {
                                member
                            }
                        })
                        .collect(),
                ),
            GroupAnswer::Describe(None) => {
                result.with_group_state(StrBytes::from_static_str("Dead"))
            }
            other => result.with_error_code(other.error().code()),
        });
    }
    DescribeGroupsResponse::default().with_groups(described)
}
