//! The fuzz bodies of the broker's decoders of untrusted and on-disk bytes,
//! shared by the cargo-fuzz targets (broker/fuzz, scripts/fuzz.sh) and the
//! short seeded run CI gives each (the tests below, with
//! `storage::fuzzing::short_run`).

use crate::api::{encode_default_body, SERVED};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// Arbitrary bytes as one request frame body (header and request): decoding
/// must return a request or a reason to close, never panic or run away
/// with memory.
pub fn request(data: &[u8]) {
    let _ = crate::protocol::decode::decode(BytesMut::from(data));
}

/// Arbitrary bytes as a producer-state snapshot file: parsed or refused;
/// what parses keeps at most the batches a producer may have remembered.
pub fn producer_snapshot(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some((producers, _)) = crate::producer_state::parse_snapshot(&text) {
        assert!(producers.len() <= crate::producer_state::SNAPSHOT_PRODUCERS_MAX);
        assert!(producers
            .values()
            .all(|p| p.batches.len() <= crate::producer_state::PRODUCER_BATCHES_MAX));
    }
}

/// Arbitrary bytes as `__consumer_offsets` segment bytes (the group store's
/// replay), and split at every 8th byte as one record's key and value.
pub fn offsets_records(data: &[u8]) {
    let _ = crate::group::store::decode_batches(Bytes::copy_from_slice(data));
    let split = data.len() / 8;
    let key = Bytes::copy_from_slice(&data[..split]);
    let value = Bytes::copy_from_slice(&data[split..]);
    let _ = crate::group::store::Entry::decode(&key, Some(&value));
    let _ = crate::group::store::Entry::decode(&key, None);
}

/// Valid request frame bodies: the default request of every served API at
/// every served version, with a header of the version that API expects.
pub fn request_samples() -> Vec<Vec<u8>> {
    let mut samples = Vec::new();
    for &(api, min, max) in SERVED {
        for version in min..=max {
            let Some(body) = encode_default_body(api, version) else {
                continue;
            };
            let header = RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("fuzz")));
            let mut frame = BytesMut::new();
            if header
                .encode(&mut frame, api.request_header_version(version))
                .is_err()
            {
                continue;
            }
            frame.put_slice(&body);
            samples.push(frame.to_vec());
        }
    }
    samples
}

/// Valid `__consumer_offsets` batches: an offset commit, a group, and
/// their tombstones.
pub fn offsets_samples() -> Vec<Vec<u8>> {
    use crate::group::store::{encode_batch, CommittedOffset, Entry, GroupRecord};
    let entries = [
        Entry::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 1,
                metadata: "m".into(),
                commit_timestamp_ms: 1_700_000_000_000,
            }),
        },
        Entry::Group {
            group: "g".into(),
            value: Some(GroupRecord {
                protocol_type: "consumer".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("member-1".into()),
                state_timestamp_ms: 1_700_000_000_000,
            }),
        },
        Entry::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: None,
        },
        Entry::Group {
            group: "g".into(),
            value: None,
        },
    ];
    let mut samples: Vec<Vec<u8>> = entries
        .iter()
        .filter_map(|e| encode_batch(std::slice::from_ref(e), 1_700_000_000_000).ok())
        .map(|b| b.to_vec())
        .collect();
    if let Ok(all) = encode_batch(&entries, 1_700_000_000_000) {
        samples.push(all.to_vec());
    }
    samples
}

/// Kept for the fuzz targets' corpus seeding: the API a sample is for.
pub fn sample_api(sample: &[u8]) -> Option<ApiKey> {
    let key = i16::from_be_bytes([*sample.first()?, *sample.get(1)?]);
    ApiKey::try_from(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::fuzzing::{short_run, write_seeds, SHORT_RUN_CASES, SHORT_RUN_SEED};

    #[test]
    fn every_served_api_and_version_has_a_sample_that_decodes() {
        let samples = request_samples();
        let mut missing = Vec::new();
        for &(api, min, max) in SERVED {
            for version in min..=max {
                let decoded = samples.iter().any(|s| {
                    s[2..4] == version.to_be_bytes()
                        && sample_api(s) == Some(api)
                        && crate::protocol::decode::decode(BytesMut::from(&s[..])).is_ok()
                });
                // Produce v0-2 are advertised for old librdkafka and refused
                // when sent (README).
                let refused_on_purpose = api == ApiKey::Produce && version < 3;
                if decoded == refused_on_purpose {
                    missing.push(format!("{api:?} v{version}"));
                }
            }
        }
        assert!(missing.is_empty(), "no decodable sample: {missing:?}");
    }

    #[test]
    fn short_run_of_request_decoding() {
        // Every API and version gets its share of the cases.
        let samples = request_samples();
        write_seeds("request_decode", &samples);
        short_run(&samples, SHORT_RUN_CASES * 4, SHORT_RUN_SEED, request);
    }

    #[test]
    fn short_run_of_producer_snapshots() {
        let samples = [
            &b"sluice-producer-state 1\nend 5\n1 0 0 4 0\n7 3 10 12 4\n"[..],
            b"sluice-producer-state 1\nend 0\n",
        ]
        .map(<[u8]>::to_vec);
        write_seeds("producer_snapshot", &samples);
        short_run(&samples, SHORT_RUN_CASES, SHORT_RUN_SEED, producer_snapshot);
    }

    #[test]
    fn short_run_of_consumer_offsets_records() {
        write_seeds("offsets_records", &offsets_samples());
        short_run(
            &offsets_samples(),
            SHORT_RUN_CASES,
            SHORT_RUN_SEED,
            offsets_records,
        );
    }
}
