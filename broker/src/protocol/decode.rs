//! Request decoding, separate from handling so that it is pure (no runtime,
//! no state) and can be fuzzed: bytes of one frame in, a typed request or the
//! reason to close the connection out. Which APIs and versions are served,
//! and each body's decoder, come from the table in `api`.

use crate::api::{self, PRODUCE_SERVED_MIN};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, moved once; a box would cost an allocation per request"
)]
pub enum Body {
    Request(api::Request),
    /// ApiVersions at a version we do not speak: answered in v0.
    ApiVersionsUnsupported,
}

#[derive(Debug)]
pub struct Decoded {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The header's client id ("" when null).
    pub client_id: String,
    pub body: Body,
    /// The whole frame, kept for Produce (see `RequestContext::take_frame`).
    pub frame: Option<Bytes>,
}

/// Decodes one frame body (size prefix already removed).
pub fn decode(frame: BytesMut) -> Result<Decoded, String> {
    if frame.len() < 8 {
        return Err(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| format!("unknown api key {api_key}"))?;
    let (min, max) =
        api::served_range(api).ok_or_else(|| format!("api {api:?} is not supported"))?;
    if api == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // Kafka's contract: answer with our range in a v0 body so the client
        // can retry with a version we speak.
        return Ok(Decoded {
            api,
            version: 0,
            correlation_id,
            client_id: String::new(),
            body: Body::ApiVersionsUnsupported,
            frame: None,
        });
    }
    if !(min..=max).contains(&version) || (api == ApiKey::Produce && version < PRODUCE_SERVED_MIN) {
        return Err(format!(
            "{api:?} v{version} is not served (range {min}..={max})"
        ));
    }
    let frame: Bytes = frame.freeze();
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("bad request header: {e}"))?;
    let request = api::decode_body(api, version, &mut buf)?;
    Ok(Decoded {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        body: Body::Request(request),
        frame: (api == ApiKey::Produce).then_some(frame),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole way from a request frame: decode, then the handler's split.
    #[test]
    fn a_decoded_produce_request_hands_its_batches_over_uncopied() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TransactionalId};
        use kafka_protocol::protocol::Encodable;
        use kafka_protocol::protocol::StrBytes;
        let batch = |text: &[u8]| Bytes::from(storage::batch::build_batch(&[text], 1));
        let partition = |index, text: &[u8]| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(batch(text)))
        };
        for version in [3i16, 9, 11] {
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(crate::api::topic_name("t"))
                    .with_partition_data(vec![partition(0, b"zero"), partition(1, b"one")])]);
            let mut frame = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(ApiKey::Produce as i16)
                .with_request_api_version(version)
                .encode(&mut frame, ApiKey::Produce.request_header_version(version))
                .expect("header");
            request.encode(&mut frame, version).expect("body");
            let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
            let decoded = decode(frame).expect("decodes");
            let Body::Request(crate::api::Request::Produce(request)) = decoded.body else {
                panic!("not a produce request");
            };
            let (wanted, mut records) = crate::api::produce::batches_of(decoded.frame, request);
            assert_eq!(wanted.len(), 1);
            for expected in [&b"zero"[..], b"one"] {
                let piece = records.next_piece().expect("records");
                assert_eq!(&piece[..], &batch(expected)[..]);
                assert!(
                    range.contains(&(piece.as_ptr() as usize)),
                    "v{version}: the batch was copied out of the frame"
                );
            }
        }
    }
}
