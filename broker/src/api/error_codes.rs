//! The error codes each response carries, counted per API and code for
//! `kafka_network_requestmetrics_errors_total` as Kafka counts them
//! (AbstractResponse.errorCounts: every top-level, topic, partition,
//! group or member code, NONE included).

use crate::api::fetch::FetchReply;
use crate::api::produce::ProduceReply;
use kafka_protocol::messages as m;

pub trait ErrorCodes {
    fn error_codes(&self, each: &mut dyn FnMut(i16));
}

/// Responses whose only code is the top-level one.
macro_rules! top_level {
    ($($response:ty),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                each(self.error_code);
            }
        })*
    };
}

top_level!(
    m::ApiVersionsResponse,
    m::InitProducerIdResponse,
    m::DescribeClusterResponse,
    m::JoinGroupResponse,
    m::SyncGroupResponse,
    m::HeartbeatResponse,
    m::ListGroupsResponse,
    m::ListPartitionReassignmentsResponse,
    m::SaslHandshakeResponse,
    m::SaslAuthenticateResponse,
    m::DescribeClientQuotasResponse,
    m::DescribeAclsResponse,
);

/// Responses with a code per entry of one list (`$list`), and optionally a
/// top-level one too.
macro_rules! per_entry {
    ($($response:ty => $list:ident $(+ $top:ident)?),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                $(each(self.$top);)?
                for entry in &self.$list {
                    each(entry.error_code);
                }
            }
        })*
    };
}

per_entry!(
    m::CreateTopicsResponse => topics,
    m::DeleteTopicsResponse => responses,
    m::CreatePartitionsResponse => results,
    m::DescribeConfigsResponse => results,
    m::IncrementalAlterConfigsResponse => responses,
    m::FindCoordinatorResponse => coordinators + error_code,
    m::LeaveGroupResponse => members + error_code,
    m::DescribeGroupsResponse => groups,
    m::DeleteGroupsResponse => results,
    m::DescribeLogDirsResponse => results + error_code,
    m::DescribeUserScramCredentialsResponse => results + error_code,
    m::AlterUserScramCredentialsResponse => results,
    m::CreateAclsResponse => results,
    m::DeleteAclsResponse => filter_results,
    m::MetadataResponse => topics,
);

/// Responses with a code per partition of each topic (`$topics` then
/// `$partitions`), and optionally a top-level one.
macro_rules! per_partition {
    ($($response:ty => $topics:ident . $partitions:ident $(+ $top:ident)?),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                $(each(self.$top);)?
                for topic in &self.$topics {
                    for partition in &topic.$partitions {
                        each(partition.error_code);
                    }
                }
            }
        })*
    };
}

per_partition!(
    m::ListOffsetsResponse => topics.partitions,
    m::OffsetCommitResponse => topics.partitions,
    m::OffsetDeleteResponse => topics.partitions + error_code,
    m::DeleteRecordsResponse => topics.partitions,
    m::ElectLeadersResponse => replica_election_results.partition_result + error_code,
    m::DescribeQuorumResponse => topics.partitions + error_code,
    m::DescribeProducersResponse => topics.partitions,
    m::OffsetForLeaderEpochResponse => topics.partitions,
    m::AlterPartitionReassignmentsResponse => responses.partitions + error_code,
);

impl ErrorCodes for m::OffsetFetchResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        // v0-7 answer one group at the top level, v8+ a list of groups.
        if self.groups.is_empty() {
            each(self.error_code);
            for topic in &self.topics {
                for partition in &topic.partitions {
                    each(partition.error_code);
                }
            }
        }
        for group in &self.groups {
            each(group.error_code);
            for topic in &group.topics {
                for partition in &topic.partitions {
                    each(partition.error_code);
                }
            }
        }
    }
}

impl ErrorCodes for ProduceReply {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        self.response().error_codes(each);
    }
}

impl ErrorCodes for m::ProduceResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        for topic in &self.responses {
            for partition in &topic.partition_responses {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for FetchReply {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    fn codes(response: &impl ErrorCodes) -> Vec<i16> {
        let mut seen = Vec::new();
        response.error_codes(&mut |code| seen.push(code));
        seen
    }

    #[test]
    fn every_level_is_counted() {
        let produce =
            m::ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_partition_responses(vec![
                    PartitionProduceResponse::default().with_error_code(0),
                    PartitionProduceResponse::default().with_error_code(6),
                ])]);
        assert_eq!(codes(&produce), vec![0, 6]);
        let heartbeat = m::HeartbeatResponse::default().with_error_code(27);
        assert_eq!(codes(&heartbeat), vec![27]);
        let leave = m::LeaveGroupResponse::default()
            .with_error_code(0)
            .with_members(vec![
                m::leave_group_response::MemberResponse::default().with_error_code(25)
            ]);
        assert_eq!(codes(&leave), vec![0, 25]);
    }
}
