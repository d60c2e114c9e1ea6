//! InitProducerId for idempotent producers: a fresh producer id, or the same
//! id with a bumped epoch when the client asks for one (KIP-360).
//! Transactions are not served yet: a transactional id is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which the Java producer's
//! `TransactionManager.InitProducerIdHandler` fails on at once (an
//! abortable error that fails `initTransactions()`), where a retriable
//! code would be retried until `max.block.ms`.

use crate::api::context::RequestContext;
use crate::core::Core;
use controller::acl::operation::{IDEMPOTENT_WRITE, WRITE};
use controller::acl::resource::{CLUSTER, TOPIC};
use controller::acl::CLUSTER_NAME;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !id.0.is_empty())
    {
        core.refusals.warn_once(
            &ctx.client_id,
            ctx.connection.peer,
            "InitProducerId with a transactional id: transactions are not supported",
        );
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or
    // WRITE on some topic (KIP-679).
    let authorizer = core.authorizer();
    let caller = ctx.caller();
    if !authorizer.allows(&caller, IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME)
        && !authorizer.allows_some(&caller, WRITE, TOPIC)
    {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let renew = request.producer_id.0 >= 0 && request.producer_epoch >= 0;
    let (id, epoch) = if renew && request.producer_epoch != i16::MAX - 1 {
        (request.producer_id.0, request.producer_epoch + 1)
    } else {
        match core.allocate_producer_id().await {
            Ok(id) => (id, 0),
            Err(error) => {
                return response.with_error_code(crate::errors::controller_error(&error).code())
            }
        }
    };
    response
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}
