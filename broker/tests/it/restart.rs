//! Restarting on the same port: at once after a crash, and a clear error
//! when something live really holds the port.

use crate::client::*;
use crate::harness::{Broker, StartFailed};
use kafka_protocol::messages::*;

/// The killed broker's accepted connection outlives it in FIN-WAIT/TIME-WAIT
/// for a minute; the restart must not take it for a live broker.
#[test]
fn restart_after_sigkill_with_an_open_connection_is_immediate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let port = broker.address.port();
    // Answered requests, so the broker accepted this connection.
    let mut held = Client::connect(broker.address);
    assert_eq!(create_topic(&mut held, "kept", 1), 0);
    let produced: ProduceResponse = held.call(
        ApiKey::Produce,
        9,
        &produce_request("kept", 0, batch(&[b"before the crash"]), -1),
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    broker.kill();

    // `held` stays open: the killed side of it lingers on the port.
    let broker = Broker::start_on(dir.path(), port, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(offsets_only(&mut client, "kept", 1, -1), vec![1]);
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("kept", 0, 0, 0));
    let records = fetched.responses[0].partitions[0].records.as_ref();
    assert!(records.is_some_and(|r| r.windows(16).any(|w| w == b"before the crash")));
    drop(held);
}

fn assert_refused(failed: StartFailed) {
    assert!(
        failed.status.is_some_and(|s| !s.success()),
        "{:?}",
        failed.status
    );
    assert!(
        failed.stderr.contains("(is another broker running?)"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_second_broker_on_the_same_port_is_refused_and_the_first_keeps_serving() {
    let first = Broker::start(&[]);
    let mut before = Client::connect(first.address);
    let _: ApiVersionsResponse =
        before.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());

    let other_dir = tempfile::tempdir().expect("tempdir");
    match Broker::try_start_on(other_dir.path(), first.address.port(), &[], &[]) {
        Ok(_) => panic!("a second broker started on a port a live broker listens on"),
        Err(failed) => assert_refused(failed),
    }

    // Old and new connections are still served by the first.
    let _: ApiVersionsResponse =
        before.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut after = Client::connect(first.address);
    assert_eq!(create_topic(&mut after, "still", 1), 0);
}

#[test]
fn a_plain_listener_on_the_port_is_refused_too() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    match Broker::try_start_on(dir.path(), port, &[], &[]) {
        Ok(_) => panic!("the broker started on a port another listener holds"),
        Err(failed) => assert_refused(failed),
    }
    drop(listener);
}
