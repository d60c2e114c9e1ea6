//! SaslAuthenticate reached through the API table: on a listener without
//! SASL (on SASL listeners the connection's authenticator takes it,
//! security/sasl.rs). Kafka answers ILLEGAL_SASL_STATE there.

use crate::api::context::RequestContext;
use crate::core::Core;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    _core: &Rc<Core>,
    _request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_string(format!(
            "SaslAuthenticate on listener {}, which does not use SASL",
            ctx.connection.listener
        ))))
}
