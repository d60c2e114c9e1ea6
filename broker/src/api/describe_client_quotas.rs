//! DescribeClientQuotas: Sluice enforces no client quotas, so every match
//! is empty. `kafka-configs --describe --entity-type users` asks for them
//! before it lists the users' SCRAM credentials.

use crate::api::context::RequestContext;
use crate::core::Core;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use std::rc::Rc;

pub async fn handle(
    _ctx: &RequestContext,
    _core: &Rc<Core>,
    _request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()))
}
