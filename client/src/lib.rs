//! A lean blocking Kafka client on the kafka-protocol crate, shared by
//! `bench` and the `sluice` CLI: one TCP connection (plain, or TLS and
//! SASL per security.rs), requests may be pipelined. It speaks only the
//! wire protocol (no server crate).

pub mod batches;
pub mod fetch;
pub mod kafka;
pub mod member;
pub mod sasl;
pub mod security;
pub mod stream;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use security::Security;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use stream::Socket;

/// Versions bench speaks; every Kafka 3.x/4.x broker and Sluice serve them.
pub const PRODUCE_VERSION: i16 = 9;
pub const METADATA_VERSION: i16 = 9;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const DELETE_TOPICS_VERSION: i16 = 4;
/// Largest response bench accepts.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

pub struct Connection {
    client_id: String,
    socket: Socket,
    writer: Box<dyn Write + Send>,
    reader: BufReader<Box<dyn Read + Send>>,
    next_correlation_id: i32,
}

impl Connection {
    /// Connects with the process's default security (security.rs:
    /// plaintext unless the program set it).
    pub fn connect(address: &str) -> Result<Connection> {
        Connection::connect_with(address, &security::default_security())
    }

    /// Connects, does the TLS handshake and the SASL exchange the
    /// security asks for.
    pub fn connect_with(address: &str, security: &Security) -> Result<Connection> {
        let stream =
            TcpStream::connect(address).with_context(|| format!("connect to {address}"))?;
        stream.set_nodelay(true)?;
        // A broker that stops answering fails the run instead of hanging it.
        stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        let socket = match &security.tls {
            None => Socket::Plain(stream),
            Some(config) => Socket::tls(stream, config.clone(), Security::server_name(address)?)
                .with_context(|| format!("TLS to {address}"))?,
        };
        let mut connection = Connection {
            client_id: "sluice-bench".to_string(),
            reader: BufReader::with_capacity(256 * 1024, socket.reader()?),
            writer: socket.writer()?,
            socket,
            next_correlation_id: 1,
        };
        if let Some(sasl) = &security.sasl {
            sasl::authenticate(&mut connection, sasl)
                .with_context(|| format!("SASL {} to {address}", sasl.mechanism.name()))?;
        }
        Ok(connection)
    }

    /// The TCP socket under the connection (for socket options).
    pub fn tcp(&self) -> &TcpStream {
        self.socket.tcp()
    }

    /// The client id sent in every request header.
    pub fn with_client_id(mut self, client_id: &str) -> Connection {
        self.client_id = client_id.to_string();
        self
    }

    /// A second handle on the same socket for a reader thread; it expects
    /// responses to ids this connection sends.
    pub fn try_clone_reader(&self) -> Result<Connection> {
        let socket = self.socket.try_clone()?;
        Ok(Connection {
            client_id: self.client_id.clone(),
            reader: BufReader::with_capacity(256 * 1024, socket.reader()?),
            writer: socket.writer()?,
            socket,
            next_correlation_id: 0,
        })
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<i32> {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut frame = BytesMut::with_capacity(64 + request.compute_size(version).unwrap_or(0));
        frame.put_i32(0);
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&size.to_be_bytes());
        self.writer.write_all(&frame)?;
        Ok(id)
    }

    /// Reads the next response, checking it answers `id`.
    pub fn receive<Resp: Decodable>(&mut self, api: ApiKey, version: i16, id: i32) -> Result<Resp> {
        let mut size = [0u8; 4];
        self.reader.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        let Ok(len) = usize::try_from(size) else {
            bail!("negative response size {size}")
        };
        if len > RESPONSE_BYTES_MAX {
            bail!("response of {len} bytes exceeds {RESPONSE_BYTES_MAX}");
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))?;
        if header.correlation_id != id {
            bail!("response {} where {id} was expected", header.correlation_id);
        }
        let response = Resp::decode(&mut body, version)?;
        if body.has_remaining() {
            bail!("{} unread bytes after a {api:?} response", body.remaining());
        }
        Ok(response)
    }

    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable,
    {
        let id = self.send(api, version, request)?;
        self.receive(api, version, id)
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn create_topic(connection: &mut Connection, name: &str, partitions: i32) -> Result<()> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse =
        connection.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)?;
    let code = response.topics.first().map_or(-1, |t| t.error_code);
    match code {
        0 => Ok(()),
        36 => bail!("topic {name} already exists: pick another --topic or drop --create"),
        code => bail!("CreateTopics {name} failed with error code {code}"),
    }
}

pub fn delete_topic(connection: &mut Connection, name: &str) -> Result<()> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topic_names(vec![topic_name(name)]);
    let response: DeleteTopicsResponse =
        connection.call(ApiKey::DeleteTopics, DELETE_TOPICS_VERSION, &request)?;
    match response.responses.first().map_or(-1, |r| r.error_code) {
        0 => Ok(()),
        code => bail!("DeleteTopics {name} failed with error code {code}"),
    }
}

/// Partition count of `name`, waiting for metadata to show the topic.
pub fn partitions(connection: &mut Connection, name: &str) -> Result<i32> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(name)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse =
        connection.call(ApiKey::Metadata, METADATA_VERSION, &request)?;
    let topic = response.topics.first().context("no topic in metadata")?;
    if topic.error_code != 0 {
        bail!("metadata for {name}: error code {}", topic.error_code);
    }
    Ok(topic.partitions.len() as i32)
}

pub const LIST_OFFSETS_VERSION: i16 = 7;

/// Offsets of `partitions` of `topic` at `timestamp` (-1: latest, -2:
/// earliest, else the first offset at or after that time; -1 if none), as
/// (partition, offset) sorted by partition. A partition error fails the
/// call with the Kafka error code.
pub fn list_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response: ListOffsetsResponse =
        connection.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)?;
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "ListOffsets {topic}/{}: error code {}",
                    p.partition_index,
                    p.error_code
                );
            }
            out.push((p.partition_index, p.offset));
        }
    }
    out.sort();
    Ok(out)
}

/// The latest offset of every partition 0..partitions, indexed by partition.
pub fn latest_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i64>> {
    let all: Vec<i32> = (0..partitions).collect();
    let mut latest = vec![0; partitions.max(0) as usize];
    for (p, offset) in list_offsets(connection, topic, &all, -1)? {
        if let Some(slot) = latest.get_mut(p as usize) {
            *slot = offset;
        }
    }
    Ok(latest)
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from org.apache.kafka.common.utils.Utils.murmur2 (kafka-clients 4.1.1).
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("abc", 479_470_107),
            ("key-7", 713_419_675),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }
}
