use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

#[test]
fn api_versions_advertises_the_table_and_answers_unknown_versions_in_v0() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    let response: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("produce advertised");
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::InitProducerId as i16));

    // ApiVersions v99: error 35 plus our table, in a v0 body. The crate
    // cannot encode v99, so the frame is written by hand: header v1 fields.
    let id: i32 = 77;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend_from_slice(&frame);
    client.send_raw(&sized).expect("send");
    let mut frame = client.read_frame().expect("answered");
    let header = ResponseHeader::decode(&mut frame, 0).expect("header");
    assert_eq!(header.correlation_id, id);
    let body = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
    assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
    assert!(!body.api_keys.is_empty());
}

#[test]
fn oversize_and_garbage_frames_close_only_their_connection() {
    let broker = Broker::start(&["socket.request.max.bytes=1048576"]);
    let mut healthy = Client::connect(broker.address);
    let _: ApiVersionsResponse =
        healthy.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());

    let mut oversize = Client::connect(broker.address);
    // Claims 2 GiB; the broker must close without trying to read it.
    oversize
        .send_raw(&i32::MAX.to_be_bytes())
        .expect("send size");
    assert!(oversize.read_frame().is_none(), "connection closed");

    let mut garbage = Client::connect(broker.address);
    let mut frame = 12i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x7f, 0x7f, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
    garbage.send_raw(&frame).expect("send garbage");
    assert!(garbage.read_frame().is_none(), "unknown api key closes");

    let mut truncated = Client::connect(broker.address);
    let mut frame = 9i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0xff]);
    truncated.send_raw(&frame).expect("send truncated metadata");
    assert!(truncated.read_frame().is_none(), "truncated request closes");

    let response: MetadataResponse = healthy.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(response.brokers.len(), 1, "other clients keep working");
}

#[test]
fn regression_huge_array_length_does_not_abort_the_broker() {
    let broker = Broker::start(&[]);
    // Metadata v1 and CreateTopics v2 claiming 2^31 - 1 topics in 4 bytes:
    // the protocol crate used to allocate for the claim and abort.
    for (api, version) in [(3i16, 1i16), (19, 2)] {
        let mut body = Vec::new();
        body.extend_from_slice(&api.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut attacker = Client::connect(broker.address);
        attacker.send_raw(&frame).expect("send");
        assert!(attacker.read_frame().is_none(), "malformed request closes");
    }
    let mut client = Client::connect(broker.address);
    let response: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(response.brokers.len(), 1, "broker still serving");
}

#[test]
fn regression_many_requests_on_one_connection() {
    // Each request that finds the connection's reader idle wakes it; its
    // "closing" listener used to stack one waker clone per wake until glommio's
    // i16 task refcount overflowed (32,767) and the executor panicked.
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    for _ in 0..33_000 {
        let _: ApiVersionsResponse =
            client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    }
    let response: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(
        response.brokers.len(),
        1,
        "broker still answering on the same connection"
    );
}
