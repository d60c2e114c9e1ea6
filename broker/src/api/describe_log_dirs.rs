//! DescribeLogDirs: one log dir, the data dir, with every partition of
//! every core (size on disk; offset lag 0 and no future replicas on a
//! single node), and from v4 the file system's total and usable bytes.

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
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (name, index, bytes) in core.partition_sizes().await {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(name.clone(), index)))
        {
            continue;
        }
        topics.entry(name).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(i64::try_from(bytes).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    let dir = core.config.data_dir.display().to_string();
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir))
        .with_topics(topics);
    if ctx.version >= 4 {
        // -1 where the file system cannot say, as Kafka does (UNKNOWN).
        let (total, usable) = disk_space(&core.config.data_dir).unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    let response = DescribeLogDirsResponse::default().with_results(vec![result]);
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
