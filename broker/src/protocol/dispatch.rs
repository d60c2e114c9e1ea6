//! One request frame in, one response frame (or none, or a closed
//! connection) out: decode (decode.rs), call the API's handler, frame its
//! response.

use crate::api;
use crate::protocol::decode::{decode, Request};
use crate::protocol::fetch_response::{self, Part};
use crate::shard::Shard;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use std::rc::Rc;

pub enum Outcome {
    /// A whole response frame, size prefix included.
    Respond(BytesMut),
    /// A frame in parts written in order (Fetch: record slices uncopied).
    RespondParts(Vec<Part>),
    /// acks=0 produce: nothing is sent back.
    Silent,
    /// Malformed or unsupported: close this connection only.
    Close(String),
}

/// `peer_host`: the client's address, which DescribeGroups shows.
pub async fn handle(shard: &Rc<Shard>, frame: BytesMut, peer_host: &str) -> Outcome {
    let decoded = match decode(frame) {
        Ok(decoded) => decoded,
        Err(reason) => return Outcome::Close(reason),
    };
    let (api, version, id) = (decoded.api, decoded.version, decoded.correlation_id);
    match decoded.request {
        Request::ApiVersionsUnsupported => encode(api, 0, id, &api::api_versions::unsupported()),
        Request::ApiVersions(r) => encode(
            api,
            version,
            id,
            &api::api_versions::handle(shard, r, version).await,
        ),
        Request::Metadata(r) => encode(
            api,
            version,
            id,
            &api::metadata::handle(shard, r, version).await,
        ),
        Request::Produce(r) => {
            let acks = r.acks;
            let response = api::produce::handle(shard, r, version).await;
            if acks == 0 {
                Outcome::Silent
            } else {
                encode(api, version, id, &response)
            }
        }
        Request::Fetch(r) => {
            let answer = api::fetch::handle(shard, r, version).await;
            Outcome::RespondParts(fetch_response::encode(version, id, answer))
        }
        Request::ListOffsets(r) => encode(
            api,
            version,
            id,
            &api::list_offsets::handle(shard, r, version).await,
        ),
        Request::CreateTopics(r) => encode(
            api,
            version,
            id,
            &api::create_topics::handle(shard, r, version).await,
        ),
        Request::DeleteTopics(r) => encode(
            api,
            version,
            id,
            &api::delete_topics::handle(shard, r, version).await,
        ),
        Request::InitProducerId(r) => encode(
            api,
            version,
            id,
            &api::init_producer_id::handle(shard, r, version).await,
        ),
        Request::CreatePartitions(r) => encode(
            api,
            version,
            id,
            &api::create_partitions::handle(shard, r, version).await,
        ),
        Request::DescribeConfigs(r) => encode(
            api,
            version,
            id,
            &api::describe_configs::handle(shard, r, version).await,
        ),
        Request::IncrementalAlterConfigs(r) => encode(
            api,
            version,
            id,
            &api::incremental_alter_configs::handle(shard, r, version).await,
        ),
        Request::DescribeCluster(r) => encode(
            api,
            version,
            id,
            &api::describe_cluster::handle(shard, r, version).await,
        ),
        Request::FindCoordinator(r) => encode(
            api,
            version,
            id,
            &api::find_coordinator::handle(shard, r, version).await,
        ),
        Request::JoinGroup(r) => {
            let client = api::join_group::ClientInfo {
                client_id: decoded.client_id,
                host: format!("/{peer_host}"),
            };
            let response = api::join_group::handle(shard, r, version, &client).await;
            encode(api, version, id, &response)
        }
        Request::SyncGroup(r) => encode(
            api,
            version,
            id,
            &api::sync_group::handle(shard, r, version).await,
        ),
        Request::Heartbeat(r) => encode(
            api,
            version,
            id,
            &api::heartbeat::handle(shard, r, version).await,
        ),
        Request::LeaveGroup(r) => encode(
            api,
            version,
            id,
            &api::leave_group::handle(shard, r, version).await,
        ),
        Request::OffsetCommit(r) => encode(
            api,
            version,
            id,
            &api::offset_commit::handle(shard, r, version).await,
        ),
        Request::OffsetFetch(r) => encode(
            api,
            version,
            id,
            &api::offset_fetch::handle(shard, r, version).await,
        ),
        Request::DescribeGroups(r) => encode(
            api,
            version,
            id,
            &api::describe_groups::handle(shard, r, version).await,
        ),
        Request::ListGroups(r) => encode(
            api,
            version,
            id,
            &api::list_groups::handle(shard, r, version).await,
        ),
        Request::DeleteGroups(r) => encode(
            api,
            version,
            id,
            &api::delete_groups::handle(shard, r, version).await,
        ),
        Request::OffsetDelete(r) => encode(
            api,
            version,
            id,
            &api::offset_delete::handle(shard, r, version).await,
        ),
    }
}

fn encode<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Outcome {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    if let Err(error) = header.encode(&mut out, header_version) {
        return Outcome::Close(format!("encode response header: {error}"));
    }
    if let Err(error) = body.encode(&mut out, version) {
        return Outcome::Close(format!("encode {api:?} v{version} response: {error}"));
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(out)
}
