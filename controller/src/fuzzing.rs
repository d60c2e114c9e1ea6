//! The fuzz body of the controller's decoders of on-disk and peer bytes
//! (the metadata registry): metadata records, image snapshots, the Raft
//! WAL, Raft messages and the controller RPC frames from other nodes.
//! Shared by the cargo-fuzz target (controller/fuzz, scripts/fuzz.sh) and
//! CI's short seeded run (the test below).

/// Arbitrary bytes through every decoder; none may panic.
pub fn metadata(data: &[u8]) {
    let _ = crate::records::decode(data);
    let _ = crate::image::MetadataImage::decode(data);
    let _ = crate::rpc::decode_raft(data);
    let _ = crate::rpc::from_json::<crate::rpc::RequestFrame>(data);
    let _ = crate::rpc::from_json::<crate::rpc::AnswerFrame>(data);
    if let Ok((_, end)) = crate::store::parse_wal(data) {
        assert!(end <= data.len(), "the valid part is inside the bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetadataRecord;
    use storage::fuzzing::{short_run, write_seeds, SHORT_RUN_CASES, SHORT_RUN_SEED};

    #[test]
    fn short_run_of_the_metadata_decoders() {
        let image = crate::image::MetadataImage::default();
        let samples = vec![
            crate::records::encode(&[
                MetadataRecord::RegisterBroker {
                    broker_id: 1,
                    incarnation: 7,
                    endpoints: Vec::new(),
                    rack: Some("r1".into()),
                },
                MetadataRecord::FenceBroker {
                    broker_id: 1,
                    epoch: 3,
                },
            ]),
            image.encode(),
            crate::store::sample_wal(),
            crate::rpc::encode_raft(&raft::prelude::Message::default()),
        ];
        write_seeds("metadata_decode", &samples);
        short_run(&samples, SHORT_RUN_CASES, SHORT_RUN_SEED, metadata);
    }
}
