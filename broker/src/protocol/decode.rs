//! Request decoding, separate from handling so that it is pure (no runtime,
//! no state) and can be fuzzed: bytes of one frame in, a typed request or the
//! reason to close the connection out.

use crate::protocol::versions::{self, PRODUCE_SERVED_MIN};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as m;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// A decoded request of an API and version this broker serves.
#[derive(Debug)]
pub enum Request {
    ApiVersions(m::ApiVersionsRequest),
    /// ApiVersions at a version we do not speak: answered in v0.
    ApiVersionsUnsupported,
    Metadata(m::MetadataRequest),
    Produce(m::ProduceRequest),
    Fetch(m::FetchRequest),
    ListOffsets(m::ListOffsetsRequest),
    CreateTopics(m::CreateTopicsRequest),
    DeleteTopics(m::DeleteTopicsRequest),
    InitProducerId(m::InitProducerIdRequest),
    CreatePartitions(m::CreatePartitionsRequest),
    DescribeConfigs(m::DescribeConfigsRequest),
    IncrementalAlterConfigs(m::IncrementalAlterConfigsRequest),
    DescribeCluster(m::DescribeClusterRequest),
    FindCoordinator(m::FindCoordinatorRequest),
    JoinGroup(m::JoinGroupRequest),
    SyncGroup(m::SyncGroupRequest),
    Heartbeat(m::HeartbeatRequest),
    LeaveGroup(m::LeaveGroupRequest),
    OffsetCommit(m::OffsetCommitRequest),
    OffsetFetch(m::OffsetFetchRequest),
    DescribeGroups(m::DescribeGroupsRequest),
    ListGroups(m::ListGroupsRequest),
    DeleteGroups(m::DeleteGroupsRequest),
    OffsetDelete(m::OffsetDeleteRequest),
}

#[derive(Debug)]
pub struct Decoded {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The header's client id ("" when null).
    pub client_id: String,
    pub request: Request,
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
    let (min, max) = versions::range(api).ok_or_else(|| format!("api {api:?} is not supported"))?;
    if api == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // Kafka's contract: answer with our range in a v0 body so the client
        // can retry with a version we speak.
        return Ok(Decoded {
            api,
            version: 0,
            correlation_id,
            client_id: String::new(),
            request: Request::ApiVersionsUnsupported,
        });
    }
    if !(min..=max).contains(&version) || (api == ApiKey::Produce && version < PRODUCE_SERVED_MIN) {
        return Err(format!(
            "{api:?} v{version} is not served (range {min}..={max})"
        ));
    }
    let mut buf: Bytes = frame.freeze();
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("bad request header: {e}"))?;
    macro_rules! body {
        ($variant:ident, $type:ty) => {
            Request::$variant(
                <$type>::decode(&mut buf, version)
                    .map_err(|e| format!("bad {api:?} v{version} body: {e}"))?,
            )
        };
    }
    let request = match api {
        ApiKey::ApiVersions => body!(ApiVersions, m::ApiVersionsRequest),
        ApiKey::Metadata => body!(Metadata, m::MetadataRequest),
        ApiKey::Produce => body!(Produce, m::ProduceRequest),
        ApiKey::Fetch => body!(Fetch, m::FetchRequest),
        ApiKey::ListOffsets => body!(ListOffsets, m::ListOffsetsRequest),
        ApiKey::CreateTopics => body!(CreateTopics, m::CreateTopicsRequest),
        ApiKey::DeleteTopics => body!(DeleteTopics, m::DeleteTopicsRequest),
        ApiKey::InitProducerId => body!(InitProducerId, m::InitProducerIdRequest),
        ApiKey::CreatePartitions => body!(CreatePartitions, m::CreatePartitionsRequest),
        ApiKey::DescribeConfigs => body!(DescribeConfigs, m::DescribeConfigsRequest),
        ApiKey::IncrementalAlterConfigs => {
            body!(IncrementalAlterConfigs, m::IncrementalAlterConfigsRequest)
        }
        ApiKey::DescribeCluster => body!(DescribeCluster, m::DescribeClusterRequest),
        ApiKey::FindCoordinator => body!(FindCoordinator, m::FindCoordinatorRequest),
        ApiKey::JoinGroup => body!(JoinGroup, m::JoinGroupRequest),
        ApiKey::SyncGroup => body!(SyncGroup, m::SyncGroupRequest),
        ApiKey::Heartbeat => body!(Heartbeat, m::HeartbeatRequest),
        ApiKey::LeaveGroup => body!(LeaveGroup, m::LeaveGroupRequest),
        ApiKey::OffsetCommit => body!(OffsetCommit, m::OffsetCommitRequest),
        ApiKey::OffsetFetch => body!(OffsetFetch, m::OffsetFetchRequest),
        ApiKey::DescribeGroups => body!(DescribeGroups, m::DescribeGroupsRequest),
        ApiKey::ListGroups => body!(ListGroups, m::ListGroupsRequest),
        ApiKey::DeleteGroups => body!(DeleteGroups, m::DeleteGroupsRequest),
        ApiKey::OffsetDelete => body!(OffsetDelete, m::OffsetDeleteRequest),
        other => return Err(format!("api {other:?} has no decoder")),
    };
    Ok(Decoded {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        request,
    })
}
