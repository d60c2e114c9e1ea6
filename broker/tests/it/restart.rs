//! Restarting on the same port: at once after a crash, and a clear error
//! when something live really holds the port.

use crate::client::*;
use crate::harness::{free_port, http_get, Broker, StartFailed};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

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

/// The clean stop under load: SIGTERM while a producer pipelines acks=all
/// batches. The broker stops accepting, answers what it read, flushes,
/// exits 0, and every acknowledged batch is there after the restart.
#[test]
fn sigterm_under_load_exits_cleanly_with_every_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "stopping", 1), 0);
    let address = broker.address;
    let acknowledged = std::thread::spawn(move || {
        let mut producer = Client::connect(address);
        let mut acknowledged = 0i64;
        // Until the broker closes the connection (it is stopping).
        loop {
            let request = produce_request("stopping", 0, batch(&[b"under load"]), -1);
            if producer.try_send(ApiKey::Produce, 9, &request).is_err() {
                break;
            }
            let Some(frame) = producer.read_frame() else {
                break;
            };
            let mut body = frame;
            ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9))
                .expect("response header");
            let response = ProduceResponse::decode(&mut body, 9).expect("decode");
            let p = &response.responses[0].partition_responses[0];
            if p.error_code != 0 {
                break;
            }
            assert_eq!(p.base_offset, acknowledged, "offsets in order");
            acknowledged += 1;
        }
        acknowledged
    });
    // Some load first: wait until the log has grown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while offsets_only(&mut client, "stopping", 1, -1)[0] < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load by the deadline"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = broker.stop().expect("exit status");
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    let acknowledged = acknowledged.join().expect("producer thread");
    assert!(acknowledged >= 50);
    let lines = broker.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("finishing the ones in flight")),
        "the stop drains the requests"
    );
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    let end = offsets_only(&mut client, "stopping", 1, -1)[0];
    assert!(
        end >= acknowledged,
        "log end {end} after the restart, {acknowledged} acknowledged"
    );
}

/// A second signal while stopping exits at once with status 1; the next
/// start recovers what was acknowledged. Both signals are delivered
/// together: sent while the process is stopped (SIGSTOP), then SIGCONT.
#[test]
fn a_second_signal_while_stopping_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "twice", 1), 0);
    let produced: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &produce_request("twice", 0, batch(&[b"kept"]), -1),
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    broker.signal(libc::SIGSTOP);
    broker.signal(libc::SIGTERM);
    broker.signal(libc::SIGINT);
    broker.signal(libc::SIGCONT);
    let status = broker.wait_exit().expect("exit status");
    assert_eq!(
        status.code(),
        Some(1),
        "the second signal's exit: {status:?}"
    );
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(offsets_only(&mut client, "twice", 1, -1), vec![1]);
}

/// A stop that does not finish within `sluice.shutdown.timeout.ms` (here
/// 500 ms, less than the drain waits for a long poll that waits a minute
/// for records that never come) ends with status 1 and a log line saying
/// why.
#[test]
fn a_stop_that_cannot_finish_ends_at_the_shutdown_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = free_port();
    let admin_listen = format!("sluice.admin.listen=127.0.0.1:{admin}");
    let mut broker = Broker::start_in(
        dir.path(),
        &["sluice.shutdown.timeout.ms=500", admin_listen.as_str()],
    );
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "stuck", 1), 0);
    let mut polling = Client::connect(broker.address);
    polling.send(ApiKey::Fetch, 12, &fetch_request("stuck", 0, 0, 60_000));
    // In flight once the broker counts it so (the creation was answered).
    wait_in_flight(admin, 1);
    let status = broker.stop().expect("exit status");
    assert_eq!(status.code(), Some(1), "ended by the bound: {status:?}");
    assert!(broker
        .log_lines()
        .iter()
        .any(|l| l.contains("did not finish within sluice.shutdown.timeout.ms")));
    drop(polling);
}

/// Long polls in flight on every core when the stop comes: a poll read on
/// one core waits on a partition of another, so no core may close (and end
/// its executor) before every core has answered its requests; the stop
/// ends cleanly, not at the watchdog.
#[test]
fn a_stop_with_long_polls_across_cores_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_with(
        dir.path(),
        &["--cores", "2"],
        &["sluice.shutdown.timeout.ms=20000"],
    );
    let mut admin = Client::connect(broker.address);
    assert_eq!(create_topic(&mut admin, "polled", 4), 0);
    // Connections land on both cores; each polls every partition.
    let mut polls: Vec<Client> = (0..8).map(|_| Client::connect(broker.address)).collect();
    for client in &mut polls {
        let mut request = fetch_request("polled", 0, 0, 3000);
        let partition = request.topics[0].partitions[0].clone();
        request.topics[0].partitions = (0..4)
            .map(|p| partition.clone().with_partition(p))
            .collect();
        client.send(ApiKey::Fetch, 12, &request);
    }
    let status = broker.stop().expect("exit status");
    assert!(
        status.success(),
        "a clean stop, not the watchdog: {status:?}"
    );
    drop(polls);
}

/// A request parked longer than the drain waits (a long poll of a minute)
/// does not hold the stop: it is dropped with its connection and the
/// broker exits 0.
#[test]
fn a_parked_request_is_dropped_at_the_drain_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = free_port();
    let admin_listen = format!("sluice.admin.listen=127.0.0.1:{admin}");
    // A stop that waited for the poll would end at this bound, with status 1.
    let settings = ["sluice.shutdown.timeout.ms=20000", admin_listen.as_str()];
    let mut broker = Broker::start_with(dir.path(), &["--cores", "1"], &settings);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "parked", 1), 0);
    let mut polling = Client::connect(broker.address);
    polling.send(ApiKey::Fetch, 12, &fetch_request("parked", 0, 0, 60_000));
    wait_in_flight(admin, 1);
    let status = broker.stop().expect("exit status");
    assert!(status.success(), "{status:?}");
    assert!(
        polling.closed_by_broker(),
        "the poll's connection is closed unanswered"
    );
}

/// Waits until the broker counts `n` requests in flight on a core
/// (`sluice_requests_in_flight`, from its admin endpoint on `admin`).
fn wait_in_flight(admin: u16, n: usize) {
    let wanted = format!(" {n}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http_get(admin, "/metrics")
        .lines()
        .any(|l| l.starts_with("sluice_requests_in_flight{") && l.ends_with(&wanted))
    {
        assert!(std::time::Instant::now() < deadline, "never {n} in flight");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
