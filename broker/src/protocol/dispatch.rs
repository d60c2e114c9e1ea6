//! One request frame in, one response frame (or none, or a closed
//! connection) out: decode (decode.rs), build the request's context, run
//! its handler through the API table.

use crate::api::context::{ConnectionInfo, RequestContext};
use crate::api::reply::{self, Outcome};
use crate::core::Core;
use crate::metrics::CloseReason;
use crate::protocol::decode::{decode, Body, DecodeError};
use bytes::BytesMut;
use std::rc::Rc;
use std::time::Instant;

/// `arrived`: when the connection's reader had the whole frame.
pub async fn handle(
    core: &Rc<Core>,
    frame: BytesMut,
    connection: &Rc<ConnectionInfo>,
    arrived: Instant,
) -> Outcome {
    let started = Instant::now();
    let decoded = match decode(frame) {
        Ok(decoded) => decoded,
        Err(DecodeError::Unsupported { reason, client_id }) => {
            core.refusals
                .warn_once(&client_id, connection.peer, &reason);
            core.counters.closed_by_broker(CloseReason::RefusedRequest);
            return Outcome::Refused(reason);
        }
        Err(error) => {
            core.counters
                .closed_by_broker(CloseReason::MalformedRequest);
            return Outcome::Close(error.to_string());
        }
    };
    let mut ctx = RequestContext::new(
        decoded.api,
        decoded.version,
        decoded.correlation_id,
        decoded.client_id,
        connection.clone(),
    );
    if let Some(frame) = decoded.frame {
        ctx = ctx.with_frame(frame);
    }
    let outcome = match decoded.body {
        Body::ApiVersionsUnsupported => {
            reply::encode(&ctx, &crate::api::api_versions::unsupported())
        }
        Body::Request(request) => crate::api::dispatch(&ctx, core, request).await,
    };
    core.counters.request(
        ctx.api as i16,
        ctx.version,
        started.saturating_duration_since(arrived),
        started.elapsed(),
    );
    match &outcome {
        Outcome::Close(_) => core
            .counters
            .closed_by_broker(CloseReason::MalformedRequest),
        Outcome::Refused(_) => core.counters.closed_by_broker(CloseReason::RefusedRequest),
        _ => {}
    }
    outcome
}
