//! DescribeClientQuotas: Sluice enforces no client quotas, so every match
//! is empty. `kafka-configs --describe --entity-type users` asks for them
//! before it lists the users' SCRAM credentials.

use crate::api::context::RequestContext;
use crate::core::Core;
use controller::acl::operation;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    _request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !ctx.may_on_cluster(core, operation::DESCRIBE_CONFIGS) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()))
}
