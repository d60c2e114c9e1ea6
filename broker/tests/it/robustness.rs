use crate::client::*;
use crate::harness::{free_port, Broker};
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

/// A connection the broker accepted and answers (ApiVersions).
fn answered(client: &mut Client) -> bool {
    let request = ApiVersionsRequest::default();
    if client.try_send(ApiKey::ApiVersions, 0, &request).is_err() {
        return false;
    }
    client.read_frame().is_some()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} by the deadline"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn max_connections_per_ip_closes_the_connections_past_it() {
    let broker = Broker::start(&["max.connections.per.ip=2"]);
    let mut first = Client::connect(broker.address);
    let mut second = Client::connect(broker.address);
    assert!(answered(&mut first) && answered(&mut second));
    let mut third = Client::connect(broker.address);
    assert!(!answered(&mut third), "the third from 127.0.0.1 is closed");
    // One closes: its slot comes back (once the broker saw the close).
    drop(first);
    wait_for("a slot freed", || {
        answered(&mut Client::connect(broker.address))
    });
    assert!(answered(&mut second), "the others keep being served");

    let broker = Broker::start(&[
        "max.connections.per.ip=1",
        "max.connections.per.ip.overrides=127.0.0.1:3",
    ]);
    let mut held: Vec<Client> = (0..3).map(|_| Client::connect(broker.address)).collect();
    assert!(held.iter_mut().all(answered), "the override allows 3");
    assert!(!answered(&mut Client::connect(broker.address)));
}

#[test]
fn max_connections_per_ip_overrides_must_name_ip_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ["max.connections.per.ip.overrides=localhost:5"];
    let failed = Broker::try_start_on(dir.path(), free_port(), &[], &settings);
    let Err(failed) = failed else {
        panic!("a host name is refused at start");
    };
    assert!(
        failed.stderr.contains("not an IP address"),
        "{}",
        failed.stderr
    );
}

#[test]
fn idle_connections_close_after_connections_max_idle_ms() {
    let broker = Broker::start(&["connections.max.idle.ms=200"]);
    let mut idle = Client::connect(broker.address);
    assert!(answered(&mut idle));
    // Nothing more is sent: the broker closes it (the read sees the end).
    assert!(idle.closed_by_broker(), "closed by the broker");
    // A half-sent frame does not keep a connection open either (slowloris).
    let mut partial = Client::connect(broker.address);
    partial.send_raw(&[0, 0, 0, 100, 0]).expect("send");
    assert!(partial.closed_by_broker(), "closed by the broker");
    assert!(answered(&mut Client::connect(broker.address)));
}

/// The idle watch restarts at every request: a connection that keeps
/// sending stays open for several times `connections.max.idle.ms`, and is
/// closed once it stops.
#[test]
fn busy_connections_outlive_connections_max_idle_ms() {
    let idle_ms = 1_000;
    let broker = Broker::start(&[&format!("connections.max.idle.ms={idle_ms}")]);
    let mut busy = Client::connect(broker.address);
    let started = std::time::Instant::now();
    let mut requests = 0;
    // Pacing, not synchronisation: a request every 20 ms for three idle
    // periods, each of which must be answered on the same connection.
    while started.elapsed() < std::time::Duration::from_millis(3 * idle_ms) {
        assert!(
            answered(&mut busy),
            "request {requests} on a busy connection after {:?} was not answered",
            started.elapsed()
        );
        requests += 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(busy.closed_by_broker(), "closed once it went quiet");
}

/// `queued.max.request.bytes`: a request that does not fit in the room
/// left waits (its connection reads nothing more) until an answer gives
/// room back. Here a long poll holds part of the room for its max wait, and
/// a produce that needs all of it is answered only after the poll is.
#[test]
fn queued_max_request_bytes_holds_requests_until_answers_give_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(
        dir.path(),
        &["--cores", "1"],
        &[
            "socket.request.max.bytes=2000",
            "queued.max.request.bytes=2000",
        ],
    );
    let mut admin = Client::connect(broker.address);
    assert_eq!(create_topic(&mut admin, "room", 1), 0);
    assert_eq!(create_topic(&mut admin, "quiet", 1), 0);
    // On another topic than the produce, so the produce does not end it.
    let mut polling = Client::connect(broker.address);
    polling.send(ApiKey::Fetch, 12, &fetch_request("quiet", 0, 0, 1500));
    // A produce whose frame is close to 2000 bytes: it needs the poll's room.
    let mut producing = Client::connect(broker.address);
    let value = vec![b'x'; 1800];
    producing.send(
        ApiKey::Produce,
        9,
        &produce_request("room", 0, batch(&[&value]), 1),
    );
    let mut produce_answered_first = false;
    while !polling.answer_waiting() {
        produce_answered_first |= producing.answer_waiting();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        !produce_answered_first,
        "the produce was answered while the long poll held its room"
    );
    assert!(polling.read_frame().is_some(), "the poll's answer");
    assert!(producing.read_frame().is_some(), "then the produce's");
}
