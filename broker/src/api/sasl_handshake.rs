//! SaslHandshake reached through the API table: on a listener without SASL
//! (on SASL listeners the connection's authenticator takes it,
//! security/sasl.rs). Kafka answers ILLEGAL_SASL_STATE there.

use crate::api::context::RequestContext;
use crate::core::Core;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    _ctx: &RequestContext,
    _core: &Rc<Core>,
    _request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}
