//! CreateAcls: what `kafka-acls --add` sends. Each binding is checked as
//! Kafka checks it (INVALID_REQUEST with the reason), the valid ones go to
//! the controller in one entry, and the answer waits until this broker has
//! applied it. Needs ALTER on the cluster; without an authorizer every
//! creation answers SECURITY_DISABLED, as Kafka does.

use crate::api::context::RequestContext;
use crate::api::describe_acls::refusal;
use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use controller::acl::operation;
use controller::{AclBinding, Request};
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let refusal = refusal(ctx, core, operation::ALTER);
    let mut results: Vec<Result<(), (ResponseError, String)>> = Vec::new();
    let mut bindings = Vec::new();
    for creation in &request.creations {
        if let Some((code, message)) = refusal {
            results.push(Err((code, message.to_string())));
            continue;
        }
        let binding = AclBinding {
            resource_type: creation.resource_type,
            resource_name: creation.resource_name.to_string(),
            pattern_type: creation.resource_pattern_type,
            principal: creation.principal.to_string(),
            host: creation.host.to_string(),
            operation: creation.operation,
            permission: creation.permission_type,
        };
        match binding.validate() {
            Ok(()) => {
                bindings.push(binding);
                results.push(Ok(()));
            }
            Err(invalid) => results.push(Err((ResponseError::InvalidRequest, invalid.to_string()))),
        }
    }
    if !bindings.is_empty() {
        let written = core
            .metadata_write(Request::CreateAcls { bindings }, METADATA_WRITE_TIMEOUT)
            .await;
        if let Err(error) = written {
            let code = crate::errors::controller_error(&error);
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err((code, error.to_string()));
            }
        }
    }
    let results = results
        .into_iter()
        .map(|result| match result {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
