//! One request frame in, one response frame (or none, or a closed
//! connection) out. Decodes the header, enforces the version table, hands the
//! body to the API's handler and frames its response.

use crate::api;
use crate::protocol::versions::{self, PRODUCE_SERVED_MIN};
use crate::shard::Shard;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::rc::Rc;

pub enum Outcome {
    /// A whole response frame, size prefix included.
    Respond(BytesMut),
    /// acks=0 produce: nothing is sent back.
    Silent,
    /// Malformed or unsupported: close this connection only.
    Close(String),
}

pub async fn handle(shard: &Rc<Shard>, frame: BytesMut) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(api_key) else {
        return Outcome::Close(format!("unknown api key {api_key}"));
    };
    let Some((min, max)) = versions::range(api) else {
        return Outcome::Close(format!("api {api:?} is not supported"));
    };
    let mut buf = frame.freeze();
    if api == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // Kafka's contract: answer with our range in a v0 body so the client
        // can retry with a version we speak.
        let correlation_id = correlation_id_of(&buf);
        return encode(api, 0, correlation_id, &api::api_versions::unsupported());
    }
    if !(min..=max).contains(&version) || (api == ApiKey::Produce && version < PRODUCE_SERVED_MIN) {
        return Outcome::Close(format!(
            "{api:?} v{version} is not served (range {min}..={max})"
        ));
    }
    let header = match RequestHeader::decode(&mut buf, api.request_header_version(version)) {
        Ok(header) => header,
        Err(error) => return Outcome::Close(format!("bad request header: {error}")),
    };
    let id = header.correlation_id;
    macro_rules! serve {
        ($request:ty, $handler:path) => {{
            let request = match <$request>::decode(&mut buf, version) {
                Ok(request) => request,
                Err(error) => {
                    return Outcome::Close(format!("bad {api:?} v{version} body: {error}"))
                }
            };
            let response = $handler(shard, request, version).await;
            encode(api, version, id, &response)
        }};
    }
    use kafka_protocol::messages as m;
    match api {
        ApiKey::ApiVersions => serve!(m::ApiVersionsRequest, api::api_versions::handle),
        ApiKey::Metadata => serve!(m::MetadataRequest, api::metadata::handle),
        ApiKey::Produce => {
            let request = match m::ProduceRequest::decode(&mut buf, version) {
                Ok(request) => request,
                Err(error) => {
                    return Outcome::Close(format!("bad Produce v{version} body: {error}"))
                }
            };
            let acks = request.acks;
            let response = api::produce::handle(shard, request, version).await;
            if acks == 0 {
                Outcome::Silent
            } else {
                encode(api, version, id, &response)
            }
        }
        ApiKey::Fetch => serve!(m::FetchRequest, api::fetch::handle),
        ApiKey::ListOffsets => serve!(m::ListOffsetsRequest, api::list_offsets::handle),
        ApiKey::CreateTopics => serve!(m::CreateTopicsRequest, api::create_topics::handle),
        ApiKey::DeleteTopics => serve!(m::DeleteTopicsRequest, api::delete_topics::handle),
        ApiKey::InitProducerId => serve!(m::InitProducerIdRequest, api::init_producer_id::handle),
        other => Outcome::Close(format!("api {other:?} has no handler")),
    }
}

/// The correlation id sits right after api key and version in every header.
fn correlation_id_of(buf: &Bytes) -> i32 {
    buf.get(4..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_be_bytes)
}

fn encode<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Outcome {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    if let Err(error) = header.encode(&mut out, header_version) {
        return Outcome::Close(format!("encode response header: {error}"));
    }
    if let Err(error) = body.encode(&mut out, version) {
        return Outcome::Close(format!("encode {api:?} v{version} response: {error}"));
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(out)
}
