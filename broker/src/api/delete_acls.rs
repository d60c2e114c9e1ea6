//! DeleteAcls: what `kafka-acls --remove` sends. The controller removes
//! every ACL any filter matches, in one entry, and answers per filter
//! with the ACLs it matched. Needs ALTER on the cluster; without an
//! authorizer, SECURITY_DISABLED.

use crate::api::context::RequestContext;
use crate::api::describe_acls::{filter, refusal, FilterFields};
use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use controller::acl::operation;
use controller::{Request, Response};
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::rc::Rc;

fn failed(code: ResponseError, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    if let Some((code, message)) = refusal(ctx, core, operation::ALTER) {
        let results = request
            .filters
            .iter()
            .map(|_| failed(code, message.to_string()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<_> = request
        .filters
        .iter()
        .map(|f| {
            filter(FilterFields {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_ref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref(),
                host: f.host_filter.as_ref(),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let filters: Vec<_> = parsed
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut matched = match core
        .metadata_write(Request::DeleteAcls { filters }, METADATA_WRITE_TIMEOUT)
        .await
    {
        Ok(Response::AclsDeleted(matched)) => Ok(matched.into_iter()),
        Ok(other) => Err((
            ResponseError::UnknownServerError,
            format!("unexpected controller answer {other:?}"),
        )),
        Err(error) => Err((crate::errors::controller_error(&error), error.to_string())),
    };
    let results = parsed
        .iter()
        .map(|parsed| match (parsed, &mut matched) {
            (Err(reason), _) => failed(ResponseError::InvalidRequest, reason.to_string()),
            (Ok(_), Err((code, message))) => failed(*code, message.clone()),
            (Ok(_), Ok(matched)) => {
                let acls = matched.next().unwrap_or_default();
                DeleteAclsFilterResult::default().with_matching_acls(
                    acls.into_iter()
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.resource_type)
                                .with_resource_name(StrBytes::from_string(acl.resource_name))
                                .with_pattern_type(acl.pattern_type)
                                .with_principal(StrBytes::from_string(acl.principal))
                                .with_host(StrBytes::from_string(acl.host))
                                .with_operation(acl.operation)
                                .with_permission_type(acl.permission)
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
