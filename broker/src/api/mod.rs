//! One file per Kafka API, and the one table that declares them: for each
//! served API its request type, the versions ApiVersions advertises (and
//! decode enforces), and its handler. `served_apis!` turns the table into
//! the `Request` enum, `SERVED`, `decode_body` and `dispatch`, so adding an
//! API is one line here plus its file.
//!
//! A handler is `async fn handle(ctx: &RequestContext, core: &Rc<Core>,
//! request: XRequest) -> impl Reply`: the version is `ctx.version`, and
//! any Kafka response body is a `Reply`.

pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod context;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod error_codes;
pub mod fetch;
pub mod fetch_response;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod reply;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;

use crate::core::Core;
use bytes::Bytes;
use context::RequestContext;
use kafka_protocol::messages as m;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use reply::{Outcome, Reply};
use std::rc::Rc;

macro_rules! served_apis {
    ($( $api:ident($request:ty) $min:literal ..= $max:literal => $handler:path; )*) => {
        /// A decoded request of an API this broker serves.
        #[derive(Debug)]
        pub enum Request {
            $( $api($request), )*
        }

        /// (api, advertised min, advertised max): what ApiVersions
        /// advertises and decode enforces.
        pub const SERVED: &[(ApiKey, i16, i16)] = &[ $( (ApiKey::$api, $min, $max), )* ];

        /// Decodes the body of a request of `api` at `version`.
        pub fn decode_body(api: ApiKey, version: i16, buf: &mut Bytes) -> Result<Request, String> {
            match api {
                $( ApiKey::$api => <$request as Decodable>::decode(buf, version)
                    .map(Request::$api)
                    .map_err(|e| format!("bad {api:?} v{version} body: {e}")), )*
                other => Err(format!("api {other:?} has no decoder")),
            }
        }

        /// The default request of `api` encoded at `version` (samples for
        /// the decoders' fuzzing); None where the default does not encode.
        pub fn encode_default_body(api: ApiKey, version: i16) -> Option<Vec<u8>> {
            use kafka_protocol::protocol::Encodable;
            let mut out = bytes::BytesMut::new();
            match api {
                $( ApiKey::$api => <$request>::default().encode(&mut out, version).ok()?, )*
                _ => return None,
            }
            Some(out.to_vec())
        }

        /// Runs the request's handler; its answer becomes what to write.
        pub async fn dispatch(ctx: &RequestContext, core: &Rc<Core>, request: Request) -> Outcome {
            match request {
                $( Request::$api(body) => {
                    let answer = $handler(ctx, core, body).await;
                    let api = ctx.api as i16;
                    error_codes::ErrorCodes::error_codes(&answer, &mut |code| {
                        core.counters.error(api, code)
                    });
                    answer.into_outcome(ctx)
                } )*
            }
        }
    };
}

served_apis! {
    // Produce v0-2 are advertised (librdkafka < 2.11 disables compression
    // without min 0) but the connection is closed: no magic < 2.
    Produce(m::ProduceRequest) 0..=11 => produce::handle;
    Fetch(m::FetchRequest) 4..=13 => fetch::handle;
    ListOffsets(m::ListOffsetsRequest) 1..=7 => list_offsets::handle;
    Metadata(m::MetadataRequest) 0..=12 => metadata::handle;
    ApiVersions(m::ApiVersionsRequest) 0..=3 => api_versions::handle;
    CreateTopics(m::CreateTopicsRequest) 2..=7 => create_topics::handle;
    DeleteTopics(m::DeleteTopicsRequest) 1..=6 => delete_topics::handle;
    InitProducerId(m::InitProducerIdRequest) 0..=5 => init_producer_id::handle;
    CreatePartitions(m::CreatePartitionsRequest) 0..=3 => create_partitions::handle;
    DescribeConfigs(m::DescribeConfigsRequest) 1..=4 => describe_configs::handle;
    IncrementalAlterConfigs(m::IncrementalAlterConfigsRequest) 0..=1 => incremental_alter_configs::handle;
    DescribeCluster(m::DescribeClusterRequest) 0..=2 => describe_cluster::handle;
    FindCoordinator(m::FindCoordinatorRequest) 0..=4 => find_coordinator::handle;
    JoinGroup(m::JoinGroupRequest) 0..=9 => join_group::handle;
    SyncGroup(m::SyncGroupRequest) 0..=5 => sync_group::handle;
    Heartbeat(m::HeartbeatRequest) 0..=4 => heartbeat::handle;
    LeaveGroup(m::LeaveGroupRequest) 0..=5 => leave_group::handle;
    OffsetCommit(m::OffsetCommitRequest) 2..=9 => offset_commit::handle;
    OffsetFetch(m::OffsetFetchRequest) 1..=9 => offset_fetch::handle;
    DescribeGroups(m::DescribeGroupsRequest) 0..=5 => describe_groups::handle;
    ListGroups(m::ListGroupsRequest) 0..=4 => list_groups::handle;
    DeleteGroups(m::DeleteGroupsRequest) 0..=2 => delete_groups::handle;
    OffsetDelete(m::OffsetDeleteRequest) 0..=0 => offset_delete::handle;
    DeleteRecords(m::DeleteRecordsRequest) 0..=2 => delete_records::handle;
    DescribeLogDirs(m::DescribeLogDirsRequest) 1..=4 => describe_log_dirs::handle;
    ElectLeaders(m::ElectLeadersRequest) 0..=2 => elect_leaders::handle;
    DescribeQuorum(m::DescribeQuorumRequest) 0..=2 => describe_quorum::handle;
    DescribeProducers(m::DescribeProducersRequest) 0..=0 => describe_producers::handle;
    OffsetForLeaderEpoch(m::OffsetForLeaderEpochRequest) 2..=4 => offset_for_leader_epoch::handle;
    AlterPartitionReassignments(m::AlterPartitionReassignmentsRequest) 0..=1 => alter_partition_reassignments::handle;
    ListPartitionReassignments(m::ListPartitionReassignmentsRequest) 0..=0 => list_partition_reassignments::handle;
    SaslHandshake(m::SaslHandshakeRequest) 0..=1 => sasl_handshake::handle;
    SaslAuthenticate(m::SaslAuthenticateRequest) 0..=2 => sasl_authenticate::handle;
    DescribeUserScramCredentials(m::DescribeUserScramCredentialsRequest) 0..=0 => describe_user_scram_credentials::handle;
    AlterUserScramCredentials(m::AlterUserScramCredentialsRequest) 0..=0 => alter_user_scram_credentials::handle;
    DescribeClientQuotas(m::DescribeClientQuotasRequest) 0..=1 => describe_client_quotas::handle;
    DescribeAcls(m::DescribeAclsRequest) 1..=3 => describe_acls::handle;
    CreateAcls(m::CreateAclsRequest) 1..=3 => create_acls::handle;
    DeleteAcls(m::DeleteAclsRequest) 1..=3 => delete_acls::handle;
}

/// Lowest Produce version actually served (RecordBatch v2 needs v3).
pub const PRODUCE_SERVED_MIN: i16 = 3;

/// The advertised range of `api`, if served.
pub fn served_range(api: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Runs `each` for every partition of every topic concurrently (each may
/// hop to its partition's core) and gives the answers back per topic, in
/// request order: the shape of ListOffsets, DeleteRecords and the like.
pub async fn per_partition<P, A, F, Fut>(
    topics: Vec<(String, Vec<P>)>,
    each: F,
) -> Vec<(String, Vec<A>)>
where
    F: Fn(String, P) -> Fut,
    Fut: std::future::Future<Output = A> + 'static,
    A: 'static,
{
    let pending: Vec<(String, Vec<glommio::Task<A>>)> = topics
        .into_iter()
        .map(|(name, partitions)| {
            let tasks = partitions
                .into_iter()
                .map(|partition| glommio::spawn_local(each(name.clone(), partition)))
                .collect();
            (name, tasks)
        })
        .collect();
    let mut answers = Vec::with_capacity(pending.len());
    for (name, tasks) in pending {
        let mut partitions = Vec::with_capacity(tasks.len());
        for task in tasks {
            partitions.push(task.await);
        }
        answers.push((name, partitions));
    }
    answers
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_the_protocol_crate() {
        for (api, min, max) in SERVED {
            let valid = api.valid_versions();
            let served_min = if *api == ApiKey::Produce {
                PRODUCE_SERVED_MIN
            } else {
                *min
            };
            assert!(valid.min <= served_min && *max <= valid.max, "{api:?}");
        }
    }

    #[test]
    fn every_served_api_decodes_its_default_request_at_every_version() {
        use kafka_protocol::protocol::Encodable;
        fn round_trip<R: Encodable + Default>(api: ApiKey, min: i16, max: i16) {
            for version in min..=max {
                let mut buf = bytes::BytesMut::new();
                if R::default().encode(&mut buf, version).is_err() {
                    continue; // a default the crate cannot encode at this version
                }
                let decoded = decode_body(api, version, &mut buf.freeze());
                assert!(decoded.is_ok(), "{api:?} v{version}: {:?}", decoded.err());
            }
        }
        let range = |api| served_range(api).expect("served");
        let (min, max) = range(ApiKey::Metadata);
        round_trip::<m::MetadataRequest>(ApiKey::Metadata, min, max);
        let (min, max) = range(ApiKey::Fetch);
        round_trip::<m::FetchRequest>(ApiKey::Fetch, min, max);
        let (min, max) = range(ApiKey::JoinGroup);
        round_trip::<m::JoinGroupRequest>(ApiKey::JoinGroup, min, max);
    }
}
