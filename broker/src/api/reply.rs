//! What a handler's answer becomes on the wire: a whole response frame,
//! a frame in parts (Fetch: record slices uncopied), nothing (acks=0), or
//! the end of the connection.

use crate::api::context::RequestContext;
use crate::api::fetch_response::Part;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

pub enum Outcome {
    /// A whole response frame, size prefix included.
    Respond(BytesMut),
    /// A frame in parts written in order (Fetch: record slices uncopied).
    RespondParts(Vec<Part>),
    /// acks=0 produce: nothing is sent back.
    Silent,
    /// Malformed: close this connection only (logged at WARN each time).
    Close(String),
    /// Unsupported API or version: close this connection; the refusal was
    /// already logged once per client id and reason (refusals.rs), so the
    /// close itself is logged at debug only.
    Refused(String),
}

/// A handler's answer, turned into what the connection writes.
pub trait Reply {
    fn into_outcome(self, ctx: &RequestContext) -> Outcome;
}

/// Every Kafka response body the crate encodes.
impl<T: Encodable> Reply for T {
    fn into_outcome(self, ctx: &RequestContext) -> Outcome {
        encode(ctx, &self)
    }
}

/// The response frame: size, header for the request's version, body.
pub fn encode<R: Encodable>(ctx: &RequestContext, body: &R) -> Outcome {
    encode_frame(ctx.api, ctx.version, ctx.correlation_id, body)
}

/// `encode` without a request context (the SASL exchange answers before
/// a connection has one).
pub fn encode_frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Outcome {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let Err(error) = header.encode(&mut out, api.response_header_version(version)) {
        return Outcome::Close(format!("encode response header: {error}"));
    }
    if let Err(error) = body.encode(&mut out, version) {
        return Outcome::Close(format!("encode {api:?} v{version} response: {error}"));
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(out)
}
