//! DescribeLogDirs: every log directory (`log.dirs`) with the partitions
//! it holds on every core (size on disk; offset lag 0 and no future
//! replicas), and from v4 its file system's total and usable bytes. An
//! offline directory answers KAFKA_STORAGE_ERROR and no partitions, as in
//! Kafka.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use controller::acl::operation;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !ctx.may_on_cluster(core, operation::DESCRIBE) {
        // The error code exists from v3 on; before, an empty answer.
        return if ctx.version >= 3 {
            DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
        } else {
            DescribeLogDirsResponse::default()
        };
    }
    // None: every partition; else only those asked for.
    let wanted: Option<HashSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect()
    });
    let dirs = core.cluster.log_dirs.all();
    let mut topics: Vec<BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        vec![BTreeMap::new(); dirs.len()];
    for (name, index, bytes, dir) in core.partition_sizes().await {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(name.clone(), index)))
        {
            continue;
        }
        let Some(in_dir) = topics.get_mut(dir) else {
            continue;
        };
        in_dir.entry(name).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(i64::try_from(bytes).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let results = dirs
        .iter()
        .zip(topics)
        .map(|(dir, topics)| {
            let path = StrBytes::from_string(dir.path().display().to_string());
            if dir.is_offline() {
                return DescribeLogDirsResult::default()
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_log_dir(path)
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1);
            }
            let topics = topics
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect();
            let mut result = DescribeLogDirsResult::default()
                .with_log_dir(path)
                .with_topics(topics);
            if ctx.version >= 4 {
                // -1 where the file system cannot say, as Kafka does (UNKNOWN).
                let (total, usable) = disk_space(dir.path()).unwrap_or((-1, -1));
                result = result.with_total_bytes(total).with_usable_bytes(usable);
            }
            result
        })
        .collect();
    let response = DescribeLogDirsResponse::default().with_results(results);
    if ctx.version >= 3 {
        response.with_error_code(0)
    } else {
        response
    }
}

/// (total, usable) bytes of the file system holding `dir`, as Kafka's
/// INT64 fields.
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    let (total, usable) = storage::io::disk_space(dir)?;
    let clamp = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
    Some((clamp(total), clamp(usable)))
}
