//! What this broker serves, per API: the single table that ApiVersions
//! advertises and dispatch enforces. Ranges follow shared/PROTOCOL.md.

use kafka_protocol::messages::ApiKey;

/// (api, advertised min, advertised max).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // Produce v0-2 are advertised (librdkafka < 2.11 disables compression
    // without min 0) but answered with UNSUPPORTED_VERSION: no magic < 2.
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// Lowest Produce version actually served (RecordBatch v2 needs v3).
pub const PRODUCE_SERVED_MIN: i16 = 3;

pub fn range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_the_protocol_crate() {
        for (api, min, max) in SUPPORTED {
            let valid = api.valid_versions();
            let served_min = if *api == ApiKey::Produce {
                PRODUCE_SERVED_MIN
            } else {
                *min
            };
            assert!(valid.min <= served_min && *max <= valid.max, "{api:?}");
        }
    }
}
