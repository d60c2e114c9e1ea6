//! Topics as the broker uses them (a view of the controller's image), the
//! topic-name rules, and the registry file of the single-node broker before
//! the controller quorum (`<data-dir>/__sluice_metadata/topics`, text, one
//! topic per line: `name<TAB>partitions<TAB>key=value,key=value`), read
//! once to migrate its topics into the metadata log.

use crate::error::MetadataError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use storage::config::ConfigError;
use storage::LogConfig;

type Result<T> = std::result::Result<T, MetadataError>;

const DIR: &str = "__sluice_metadata";
const FILE: &str = "topics";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions per topic accepted by CreateTopics / auto-create.
pub const PARTITIONS_MAX: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    /// Overrides by Kafka topic-config name, as given.
    pub configs: BTreeMap<String, String>,
    /// The topic id (0 only in the legacy registry file).
    pub id: u128,
    /// Replicas, ISR, leader and epochs of each partition.
    pub assignment: Vec<controller::PartitionImage>,
}

impl Topic {
    pub fn from_image(topic: &controller::TopicImage) -> Topic {
        Topic {
            name: topic.name.clone(),
            partitions: topic.partitions.len() as i32,
            configs: topic.configs.clone(),
            id: topic.id,
            assignment: topic.partitions.clone(),
        }
    }

    /// The partition's leader (-1: none, or no such partition).
    pub fn leader(&self, partition: i32) -> i32 {
        self.partition(partition).map_or(-1, |p| p.leader)
    }

    pub fn partition(&self, partition: i32) -> Option<&controller::PartitionImage> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.assignment.get(p))
    }

    /// Whether `node` holds a replica of the partition.
    pub fn hosted_by(&self, partition: i32, node: i32) -> bool {
        self.partition(partition)
            .is_some_and(|p| p.replicas.contains(&node))
    }

    /// The topic's log config: broker defaults plus its overrides.
    pub fn log_config(&self, defaults: &LogConfig) -> std::result::Result<LogConfig, ConfigError> {
        let mut config = defaults.clone();
        for (key, value) in &self.configs {
            config.set(key, value)?;
        }
        Ok(config)
    }
}

/// The legacy registry file, read for migration.
pub struct TopicStore {
    path: PathBuf,
    topics: BTreeMap<String, Topic>,
}

/// Kafka's rule: 1..=249 chars of [a-zA-Z0-9._-], not "." or "..".
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl TopicStore {
    pub fn open(data_dir: &Path) -> Result<TopicStore> {
        let path = data_dir.join(DIR).join(FILE);
        let mut topics = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (number, line) in text.lines().enumerate() {
                    let topic = parse_line(line).ok_or_else(|| MetadataError::BadLine {
                        path: path.clone(),
                        line: number + 1,
                    })?;
                    topics.insert(topic.name.clone(), topic);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
        Ok(TopicStore { path, topics })
    }

    pub fn get(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    /// The file is migrated: keep it under another name, so a restart does
    /// not migrate again and an operator can still read it.
    pub fn retire(self) -> Result<()> {
        if self.topics.is_empty() && !self.path.exists() {
            return Ok(());
        }
        let retired = self.path.with_extension("migrated");
        std::fs::rename(&self.path, &retired).map_err(io_error(&self.path))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_line(line: &str) -> Option<Topic> {
    let mut fields = line.split('\t');
    let name = fields.next()?.to_string();
    let partitions = fields.next()?.parse().ok()?;
    let mut configs = BTreeMap::new();
    for pair in fields
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=')?;
        configs.insert(k.to_string(), v.to_string());
    }
    (is_valid_topic_name(&name) && partitions > 0).then_some(Topic {
        name,
        partitions,
        configs,
        id: 0,
        assignment: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_file_is_read_and_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(DIR)).expect("mkdir");
        std::fs::write(
            dir.path().join(DIR).join(FILE),
            "a.b-c_1\t3\tretention.ms=1000\n",
        )
        .expect("write");
        let store = TopicStore::open(dir.path()).expect("open");
        let topic = store.get("a.b-c_1").expect("migrated topic");
        assert_eq!(topic.partitions, 3);
        assert_eq!(
            topic.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        store.retire().expect("retire");
        assert!(TopicStore::open(dir.path())
            .expect("reopen")
            .all()
            .next()
            .is_none());
        assert!(dir.path().join(DIR).join("topics.migrated").exists());
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(is_valid_topic_name("orders.v1-eu_2"));
        for bad in ["", ".", "..", "has space", "slash/no", &"x".repeat(250)] {
            assert!(!is_valid_topic_name(bad), "{bad}");
        }
    }
}
