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

/// Why a frame was not decoded; either way the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Garbage: too short, a bad header or body.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed request of an API or version this broker does not
    /// serve: the operator is told (refusals.rs) with the client id.
    #[error("{reason}")]
    Unsupported { reason: String, client_id: String },
}

/// Decodes one frame body (size prefix already removed).
pub fn decode(frame: BytesMut) -> Result<Decoded, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Malformed(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        )));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let unsupported = |reason: String| DecodeError::Unsupported {
        reason,
        client_id: raw_client_id(&frame),
    };
    let api =
        ApiKey::try_from(api_key).map_err(|_| unsupported(format!("unknown api key {api_key}")))?;
    let (min, max) = api::served_range(api)
        .ok_or_else(|| unsupported(format!("api {api:?} ({api_key}) is not supported")))?;
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
        let served_min = if api == ApiKey::Produce {
            PRODUCE_SERVED_MIN
        } else {
            min
        };
        return Err(unsupported(format!(
            "{api:?} v{version} is not served (served {served_min}..={max})"
        )));
    }
    let frame: Bytes = frame.freeze();
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| DecodeError::Malformed(format!("bad request header: {e}")))?;
    let request = api::decode_body(api, version, &mut buf).map_err(DecodeError::Malformed)?;
    Ok(Decoded {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        body: Body::Request(request),
        frame: (api == ApiKey::Produce).then_some(frame),
    })
}

/// The client id of a request header (v1 and later: a nullable string right
/// after the correlation id, also in flexible headers), read by hand from a
/// request whose API or version has no decoder here; "" if absent or cut.
pub fn raw_client_id(frame: &[u8]) -> String {
    let Some(length) = frame.get(8..10).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return String::new();
    };
    let Ok(length) = usize::try_from(length) else {
        return String::new(); // -1: null
    };
    frame
        .get(10..10 + length)
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unserved_api_or_version_is_unsupported_with_the_client_id() {
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let frame = |api: i16, version: i16, client_id: Option<&'static str>| {
            let mut frame = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(api)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(client_id.map(StrBytes::from_static_str))
                .encode(&mut frame, 1)
                .expect("header");
            frame
        };
        let unsupported = |api, version, client_id| match decode(frame(api, version, client_id)) {
            Err(DecodeError::Unsupported { client_id, .. }) => Some(client_id),
            _ => None,
        };
        // AddPartitionsToTxn is not served; Fetch v3 and Produce v2 are below the range.
        assert_eq!(
            unsupported(24, 3, Some("kafka-tool")).as_deref(),
            Some("kafka-tool")
        );
        assert_eq!(unsupported(1, 3, Some("c")).as_deref(), Some("c"));
        assert_eq!(unsupported(0, 2, None).as_deref(), Some(""));
        assert_eq!(unsupported(9999, 0, Some("new")).as_deref(), Some("new"));
        assert!(matches!(
            decode(BytesMut::from(&[0u8; 4][..])),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(raw_client_id(&[0, 1, 0, 0, 0, 0, 0, 7, 0, 9, b'x']), "");
    }

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
