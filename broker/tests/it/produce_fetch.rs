use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use storage::batch::BatchHeader;

fn fetch_values(client: &mut Client, name: &str, offset: i64) -> (i16, Vec<i64>, i64) {
    let response: FetchResponse =
        client.call(ApiKey::Fetch, 12, &fetch_request(name, 0, offset, 0));
    let partition = &response.responses[0].partitions[0];
    let mut bases = Vec::new();
    if let Some(records) = &partition.records {
        let mut scan = storage::batch::BatchScan::new(records);
        while let Ok((_, batch)) = scan.next_batch() {
            bases.push(BatchHeader::parse(batch).expect("header").base_offset());
        }
    }
    (partition.error_code, bases, partition.high_watermark)
}

#[test]
fn produce_acks_all_then_fetch_returns_the_batches_with_offsets() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "pf", 1), 0);
    let mut bases = Vec::new();
    for (i, acks) in [-1i16, 1, -1, 1].into_iter().enumerate() {
        let request = produce_request(
            "pf",
            0,
            batch(&[b"a", b"b", format!("{i}").as_bytes()]),
            acks,
        );
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        bases.push(partition.base_offset);
    }
    assert_eq!(bases, vec![0, 3, 6, 9]);
    let (error, fetched, high_watermark) = fetch_values(&mut client, "pf", 4);
    assert_eq!(error, 0);
    assert_eq!(
        fetched,
        vec![3, 6, 9],
        "fetch from inside a batch starts with that batch"
    );
    assert_eq!(high_watermark, 12);
    let (error, _, _) = fetch_values(&mut client, "pf", 99);
    assert_eq!(error, ResponseError::OffsetOutOfRange.code());
}

#[test]
fn acks_zero_gets_no_response_and_the_next_request_is_answered() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "a0", 1), 0);
    client.send(
        ApiKey::Produce,
        9,
        &produce_request("a0", 0, batch(&[b"x"]), 0),
    );
    // The next response on the wire must be the Metadata answer.
    let response: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(response.topics.iter().filter(|t| !t.is_internal).count(), 1);
    let (_, fetched, _) = fetch_values(&mut client, "a0", 0);
    assert_eq!(fetched, vec![0]);
}

/// Kafka's answer to a failed acks=0 write is a closed connection (there
/// is no response to carry the error); the broker serves the reconnect.
#[test]
fn a_failed_acks_zero_write_closes_the_connection() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "a0f", 1), 0);
    client.send(
        ApiKey::Produce,
        9,
        &produce_request("a0f", 7, batch(&[b"x"]), 0),
    );
    // Open, the connection would answer this; closed, it cannot.
    let _ = client.try_send(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert!(client.read_frame().is_none(), "the connection stayed open");
    let mut again = Client::connect(broker.address);
    let response: MetadataResponse = again.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(response.topics.iter().filter(|t| !t.is_internal).count(), 1);
}

/// Transactional records need the request's transactional id (and WRITE
/// on it), as in Kafka: without one they are refused, nothing appended.
#[test]
fn transactional_records_without_a_transactional_id_are_refused() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "txr", 1), 0);
    let mut bytes = batch(&[b"t"]).to_vec();
    // attributes (offset 21): the transactional bit, CRC recomputed.
    bytes[22] |= 0x10;
    let crc = storage::batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &produce_request("txr", 0, bytes::Bytes::from(bytes), -1),
    );
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    let (_, fetched, high_watermark) = fetch_values(&mut client, "txr", 0);
    assert!(fetched.is_empty() && high_watermark == 0, "{fetched:?}");
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let broker = Broker::start(&["message.max.bytes=2000"]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "bad", 1), 0);
    let mut corrupt = batch(&[b"hello"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let cases = [
        (bytes::Bytes::from(corrupt), ResponseError::CorruptMessage),
        (batch(&[&[0u8; 3000]]), ResponseError::MessageTooLarge),
    ];
    for (records, expected) in cases {
        let response: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("bad", 0, records, -1));
        assert_eq!(
            response.responses[0].partition_responses[0].error_code,
            expected.code()
        );
    }
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &produce_request("nope", 0, batch(&[b"x"]), -1),
    );
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn idempotent_retry_is_answered_with_the_original_offset() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "idem", 1), 0);
    let init: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let mut produce = |sequence: i32, count: usize| -> (i16, i64) {
        let values: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8]).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let records = idempotent_batch(&refs, pid, init.producer_epoch, sequence);
        let response: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("idem", 0, records, -1));
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    };
    assert_eq!(produce(0, 2), (0, 0));
    assert_eq!(produce(2, 3), (0, 2));
    assert_eq!(
        produce(2, 3),
        (0, 2),
        "a retried batch is not appended twice"
    );
    assert_eq!(
        produce(9, 1).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(produce(5, 1), (0, 5));
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "lo", 1), 0);
    for ts in [1000i64, 2000, 3000] {
        let records = bytes::Bytes::from(storage::batch::build_batch(&[b"x"], ts));
        let _: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("lo", 0, records, -1));
    }
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let ask = |timestamp: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic("lo"))
                .with_partitions(vec![
                    ListOffsetsPartition::default().with_timestamp(timestamp)
                ])])
    };
    let mut offset_at = |timestamp: i64| {
        let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &ask(timestamp));
        response.topics[0].partitions[0].offset
    };
    assert_eq!(offset_at(-2), 0);
    assert_eq!(offset_at(-1), 3);
    assert_eq!(offset_at(1500), 1);
    assert_eq!(offset_at(9999), -1);
}

#[test]
fn long_poll_fetch_wakes_on_a_new_message() {
    let broker = Broker::start(&[]);
    let mut consumer = Client::connect(broker.address);
    assert_eq!(create_topic(&mut consumer, "lp", 1), 0);
    // A fetch at the log end with a long max_wait is parked by the broker...
    let id = consumer.send(ApiKey::Fetch, 12, &fetch_request("lp", 0, 0, 60_000));
    // ...until a producer on another connection appends.
    let mut producer = Client::connect(broker.address);
    let _: ProduceResponse = producer.call(
        ApiKey::Produce,
        9,
        &produce_request("lp", 0, batch(&[b"wake"]), -1),
    );
    let mut frame = consumer.read_frame().expect("fetch answered");
    let header = ResponseHeader::decode(&mut frame, 1).expect("header");
    assert_eq!(header.correlation_id, id);
    let response = FetchResponse::decode(&mut frame, 12).expect("fetch");
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    assert!(!records.is_empty(), "woken with the new batch");
}

#[test]
fn sigkill_and_restart_keep_every_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "crash", 1), 0);
    let mut acked = Vec::new();
    for i in 0..50 {
        let value = format!("v{i}");
        let response: ProduceResponse = client.call(
            ApiKey::Produce,
            9,
            &produce_request("crash", 0, batch(&[value.as_bytes()]), -1),
        );
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        acked.push(p.base_offset);
    }
    broker.kill();
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < 50 {
        let (error, bases, _) = fetch_values(&mut client, "crash", offset);
        assert_eq!(error, 0);
        assert!(!bases.is_empty());
        offset = bases.last().copied().unwrap_or(offset) + 1;
        seen.extend(bases);
    }
    assert_eq!(seen, acked);
}

/// Produces idempotent batches of one record with producer id 4242.
fn produce_idempotent(client: &mut Client, name: &str, sequence: i32) -> (i16, i64) {
    let value = format!("s{sequence}");
    let records = idempotent_batch(&[value.as_bytes()], 4242, 0, sequence);
    let response: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request(name, 0, records, -1));
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn idempotent_state_survives_a_clean_restart_and_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "idem-restart", 1), 0);
    for sequence in 0..3 {
        assert_eq!(
            produce_idempotent(&mut client, "idem-restart", sequence),
            (0, i64::from(sequence))
        );
    }
    // Clean stop: the state comes back from the snapshot.
    assert!(broker.stop().is_some_and(|s| s.success()));
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        produce_idempotent(&mut client, "idem-restart", 2),
        (0, 2),
        "a retry after a clean restart is answered with the original offset"
    );
    assert_eq!(
        produce_idempotent(&mut client, "idem-restart", 7).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(produce_idempotent(&mut client, "idem-restart", 3), (0, 3));
    // Crash: the state comes back from the snapshot plus the replayed tail.
    broker.kill();
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        produce_idempotent(&mut client, "idem-restart", 3),
        (0, 3),
        "a retry after a crash is answered with the original offset"
    );
    assert_eq!(produce_idempotent(&mut client, "idem-restart", 4), (0, 4));
    let (error, bases, _) = fetch_values(&mut client, "idem-restart", 0);
    assert_eq!(error, 0);
    assert_eq!(bases, vec![0, 1, 2, 3, 4], "no batch stored twice");
}

/// One idempotent batch of one 100-byte record from producer `producer_id`.
fn produce_idempotent_as(
    client: &mut Client,
    name: &str,
    producer_id: i64,
    sequence: i32,
) -> (i16, i64) {
    let value = format!("{producer_id}:{sequence:>96}");
    let records = idempotent_batch(&[value.as_bytes()], producer_id, 0, sequence);
    let response: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request(name, 0, records, -1));
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every batch base offset of partition 0 from the log start to the high
/// watermark, fetch after fetch (one fetch may stop at a segment's end).
fn all_batch_bases(client: &mut Client, name: &str) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut offset = 0;
    loop {
        let (error, more, high_watermark) = fetch_values(client, name, offset);
        assert_eq!(error, 0);
        match more.last() {
            Some(last) => offset = last + 1,
            None => break,
        }
        bases.extend(more);
        if offset >= high_watermark {
            break;
        }
    }
    bases
}

#[test]
fn a_retry_after_a_crash_is_recognised_however_many_segments_old_its_batch_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    let created =
        create_topic_configured(&mut client, "idem-old", 1, 1, &[("segment.bytes", "1024")]);
    assert_eq!(created.error_code, 0);
    for sequence in 0..3 {
        let answer = produce_idempotent_as(&mut client, "idem-old", 4242, sequence);
        assert_eq!(answer, (0, i64::from(sequence)));
    }
    // Another producer's batches roll the log several times: producer
    // 4242's last batch is segments behind the active one.
    for sequence in 0..60 {
        let answer = produce_idempotent_as(&mut client, "idem-old", 5000, sequence);
        assert_eq!(answer, (0, 3 + i64::from(sequence)));
    }
    let partition_dir = dir.path().join("idem-old-0");
    let segments = std::fs::read_dir(&partition_dir)
        .expect("partition dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert!(
        segments >= 4,
        "{segments} segments: the log did not roll enough"
    );
    // The answer to 4242's last batch was lost (as far as the producer
    // knows); the broker dies before anything else happens.
    broker.kill();
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        produce_idempotent_as(&mut client, "idem-old", 4242, 2),
        (0, 2),
        "the retry is answered with the original offset, not written again"
    );
    assert_eq!(
        produce_idempotent_as(&mut client, "idem-old", 4242, 9).0,
        ResponseError::OutOfOrderSequenceNumber.code(),
        "the producer's sequence is still known"
    );
    assert_eq!(
        produce_idempotent_as(&mut client, "idem-old", 5000, 59),
        (0, 62),
        "the other producer's retry too"
    );
    assert_eq!(
        produce_idempotent_as(&mut client, "idem-old", 4242, 3),
        (0, 63)
    );
    assert_eq!(
        all_batch_bases(&mut client, "idem-old"),
        (0..64).collect::<Vec<i64>>(),
        "every batch once"
    );
}

#[test]
fn the_snapshot_timer_writes_the_state_when_it_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_in(dir.path(), &["sluice.producer.snapshot.interval.ms=50"]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "idem-timer", 1), 0);
    let partition_dir = dir.path().join("idem-timer-0");
    for sequence in 0..3 {
        assert_eq!(
            produce_idempotent_as(&mut client, "idem-timer", 77, sequence),
            (0, i64::from(sequence))
        );
        // The timer's snapshot covers the log end: every batch so far.
        let wanted = partition_dir.join(format!("{:020}.snapshot", sequence + 1));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !wanted.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no {} by the deadline",
                wanted.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&wanted).expect("snapshot");
        assert!(
            text.contains(&format!("\n77 0 {sequence} {sequence} {sequence}\n")),
            "{text}"
        );
    }
}

#[test]
fn idempotent_state_is_replayed_from_the_log_without_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "idem-crash", 1), 0);
    for sequence in 0..2 {
        assert_eq!(
            produce_idempotent(&mut client, "idem-crash", sequence),
            (0, i64::from(sequence))
        );
    }
    broker.kill();
    let snapshots = std::fs::read_dir(dir.path().join("idem-crash-0"))
        .expect("partition dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".snapshot"))
        .count();
    assert_eq!(snapshots, 0, "no roll, no timer yet, no close");
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(produce_idempotent(&mut client, "idem-crash", 1), (0, 1));
    assert_eq!(
        produce_idempotent(&mut client, "idem-crash", 5).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
}

/// Kafka gives the first partition with data at least one batch past
/// max_bytes, and every later partition of the response nothing (offsets
/// only) once the budget is spent.
#[test]
fn fetch_past_max_bytes_gives_later_partitions_offsets_only() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    // One core: both partitions are read from one budget in one place.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "1"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "budget", 2), 0);
    for partition in 0..2 {
        let request = produce_request("budget", partition, batch(&[b"a record of some bytes"]), -1);
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let partitions = (0..2)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1024 * 1024)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic("budget"))
            .with_partitions(partitions)]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let answers = &response.responses[0].partitions;
    let bytes = |i: usize| answers[i].records.as_ref().map_or(0, |r| r.len());
    assert!(
        bytes(0) > 0,
        "the first partition gets one batch past max_bytes"
    );
    assert_eq!(bytes(1), 0, "the budget is spent: offsets only");
    assert_eq!(answers[1].high_watermark, 1);
}
