//! A minimal blocking Kafka client for tests, on the kafka-protocol crate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation_id: 0,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Whether bytes of an answer (or the broker's close) are waiting,
    /// without reading them.
    pub fn answer_waiting(&self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let waiting = match self.stream.peek(&mut byte) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        self.stream.set_nonblocking(false).expect("blocking");
        waiting
    }

    /// Reads until the broker closes the connection: true at its end of
    /// stream (or reset), false when the 30 s read timeout passed first.
    pub fn closed_by_broker(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Reads one response frame; None if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn send<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> i32 {
        self.try_send(api, version, request).expect("send")
    }

    /// `send`, with a write error returned (the broker may have closed).
    pub fn try_send<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> std::io::Result<i32> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.send_raw(&frame)?;
        Ok(self.correlation_id)
    }

    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable,
    {
        let id = self.send(api, version, request);
        let mut frame = self.read_frame().expect("response");
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, id);
        let response = Resp::decode(&mut frame, version).expect("response body");
        assert_eq!(frame.remaining(), 0, "whole response consumed");
        response
    }
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn produce_request(name: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

pub fn fetch_request(name: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1024 * 1024)])])
}

pub fn create_topic(client: &mut Client, name: &str, partitions: i32) -> i16 {
    create_topic_configured(client, name, partitions, 1, &[]).error_code
}

/// CreateTopics v7 for one topic with these configs; its result.
pub fn create_topic_configured(
    client: &mut Client,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> kafka_protocol::messages::create_topics_response::CreatableTopicResult {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs)]);
    let mut response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    response.topics.remove(0)
}

/// A valid uncompressed batch with these values (base offset 0).
pub fn batch(values: &[&[u8]]) -> Bytes {
    Bytes::from(storage::batch::build_batch(values, 1_700_000_000_000))
}

/// The same with a producer id, epoch and base sequence (CRC recomputed).
pub fn idempotent_batch(values: &[&[u8]], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut bytes = storage::batch::build_batch(values, 1_700_000_000_000);
    bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
    bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
    bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = storage::batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

/// ListOffsets v7 for partitions 0..partitions at `timestamp` (-1 latest,
/// -2 earliest): (partition, error code, offset).
pub fn list_offsets(
    client: &mut Client,
    name: &str,
    partitions: i32,
    timestamp: i64,
) -> Vec<(i32, i16, i64)> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.offset))
        .collect()
}

/// The offsets alone, as `list_offsets` finds them.
pub fn offsets_only(client: &mut Client, name: &str, partitions: i32, timestamp: i64) -> Vec<i64> {
    list_offsets(client, name, partitions, timestamp)
        .into_iter()
        .map(|(_, _, offset)| offset)
        .collect()
}
