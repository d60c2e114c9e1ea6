//! The leader's side of replication on one broker: leader epochs stamped
//! into stored batches, OffsetForLeaderEpoch answers, and Fetch as a
//! replica refused with Kafka's codes (an unknown broker id, a stale or a
//! future leader epoch, an offset out of range) without harming the
//! partition. Multi-broker behaviour is in tests/clients/test_replication.py.

use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use storage::batch::BatchHeader;

fn end_for_epoch(client: &mut Client, name: &str, current: i32, epoch: i32) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let response: OffsetForLeaderEpochResponse =
        client.call(ApiKey::OffsetForLeaderEpoch, 4, &request);
    let answer = &response.topics[0].partitions[0];
    (answer.error_code, answer.leader_epoch, answer.end_offset)
}

fn replica_fetch(client: &mut Client, replica: i32, offset: i64, current: i32) -> i16 {
    let mut request = fetch_request("re", 0, offset, 0);
    request.replica_id = BrokerId(replica);
    request.topics[0].partitions[0].current_leader_epoch = current;
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    response.responses[0].partitions[0].error_code
}

#[test]
fn leader_epochs_are_stamped_answered_and_checked() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "re", 1), 0);
    for _ in 0..3 {
        let request = produce_request("re", 0, batch(&[b"a", b"b"]), -1);
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    // Every stored batch carries the leadership's epoch (0), whatever the
    // client wrote there (-1).
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("re", 0, 0, 0));
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let mut scan = storage::batch::BatchScan::new(&records);
    let mut epochs = Vec::new();
    while let Ok((_, batch)) = scan.next_batch() {
        epochs.push(
            BatchHeader::parse(batch)
                .expect("header")
                .partition_leader_epoch
                .get(),
        );
    }
    assert_eq!(epochs, vec![0, 0, 0]);

    // The latest epoch ends at the log end; none is known before it.
    assert_eq!(end_for_epoch(&mut client, "re", 0, 0), (0, 0, 6));
    assert_eq!(end_for_epoch(&mut client, "re", -1, 0), (0, 0, 6));
    let unknown = ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(end_for_epoch(&mut client, "re", 3, 0).0, unknown);

    // Fetch as a replica: broker 7 holds no replica; the leader's epoch
    // from the future is unknown; an offset past the log end is out of
    // range. None of it moves the high watermark or breaks the partition.
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(replica_fetch(&mut client, 7, 0, 0), not_leader);
    assert_eq!(replica_fetch(&mut client, 7, 0, 4), unknown);
    assert_eq!(replica_fetch(&mut client, 0, 0, -1), not_leader, "itself");
    let mut consumer = fetch_request("re", 0, 99, 0);
    consumer.topics[0].partitions[0].current_leader_epoch = 0;
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &consumer);
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    let mut consumer = fetch_request("re", 0, 0, 0);
    consumer.topics[0].partitions[0].current_leader_epoch = 2;
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &consumer);
    assert_eq!(response.responses[0].partitions[0].error_code, unknown);
    // An older epoch (FENCED_LEADER_EPOCH) needs a leader change: see
    // tests/clients/test_replication.py.
    let offsets = offsets_only(&mut client, "re", 1, -1);
    assert_eq!(offsets, vec![6], "high watermark unchanged");
}
