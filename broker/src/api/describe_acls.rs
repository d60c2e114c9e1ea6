//! DescribeAcls: what `kafka-acls --list` sends. The filter selects from
//! the ACLs of this core's image (MATCH: every ACL that applies to the
//! named resource); the answer groups them by resource pattern. Needs
//! DESCRIBE on the cluster; without an authorizer, SECURITY_DISABLED.

use crate::api::context::RequestContext;
use crate::core::Core;
use controller::acl::{operation, pattern, permission, resource};
use controller::{AclBinding, AclFilter};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A filter's fields as DescribeAcls and DeleteAcls carry them.
pub struct FilterFields<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a StrBytes>,
    pub pattern_type: i8,
    pub principal: Option<&'a StrBytes>,
    pub host: Option<&'a StrBytes>,
    pub operation: i8,
    pub permission: i8,
}

/// The filter, or Kafka's INVALID_REQUEST reason for an unknown code.
pub fn filter(fields: FilterFields) -> Result<AclFilter, &'static str> {
    if !(resource::ANY..=resource::USER).contains(&fields.resource_type) {
        return Err("Invalid resource type filter");
    }
    if !(pattern::ANY..=pattern::PREFIXED).contains(&fields.pattern_type) {
        return Err("Invalid pattern type filter");
    }
    if !(operation::ANY..=operation::IDEMPOTENT_WRITE).contains(&fields.operation) {
        return Err("Invalid operation filter");
    }
    if !(permission::ANY..=permission::ALLOW).contains(&fields.permission) {
        return Err("Invalid permission type filter");
    }
    Ok(AclFilter {
        resource_type: fields.resource_type,
        resource_name: fields.resource_name.map(|s| s.to_string()),
        pattern_type: fields.pattern_type,
        principal: fields.principal.map(|s| s.to_string()),
        host: fields.host.map(|s| s.to_string()),
        operation: fields.operation,
        permission: fields.permission,
    })
}

/// Why an ACL API is refused as a whole, if it is.
pub fn refusal(ctx: &RequestContext, core: &Core, op: i8) -> Option<(ResponseError, &'static str)> {
    if !core.authorizer().enabled() {
        Some((
            ResponseError::SecurityDisabled,
            "No Authorizer is configured.",
        ))
    } else if !ctx.may_on_cluster(core, op) {
        Some((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let fail = |code: ResponseError, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    if let Some((code, message)) = refusal(ctx, core, operation::DESCRIBE) {
        return fail(code, message);
    }
    let filter = match filter(FilterFields {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_ref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_ref(),
        host: request.host_filter.as_ref(),
        operation: request.operation,
        permission: request.permission_type,
    }) {
        Ok(filter) => filter,
        Err(reason) => return fail(ResponseError::InvalidRequest, reason),
    };
    let image = core.image();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<&AclBinding>> = BTreeMap::new();
    for acl in image.acls.iter().filter(|acl| filter.matches(acl)) {
        by_resource
            .entry((acl.resource_type, &acl.resource_name, acl.pattern_type))
            .or_default()
            .push(acl);
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_pattern_type(pattern_type)
                .with_acls(
                    acls.into_iter()
                        .map(|acl| {
                            AclDescription::default()
                                .with_principal(StrBytes::from_string(acl.principal.clone()))
                                .with_host(StrBytes::from_string(acl.host.clone()))
                                .with_operation(acl.operation)
                                .with_permission_type(acl.permission)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
