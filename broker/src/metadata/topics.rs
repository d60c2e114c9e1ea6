//! The topic registry of this broker: names, partition counts and per-topic
//! config overrides, persisted in `<data-dir>/__sluice_metadata/topics` so
//! that topics survive restarts. Text, one topic per line:
//! `name<TAB>partitions<TAB>key=value,key=value`, replaced atomically.

use crate::error::MetadataError;
use std::collections::BTreeMap;
use std::io::Write;
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
}

impl Topic {
    /// The topic's log config: broker defaults plus its overrides.
    pub fn log_config(&self, defaults: &LogConfig) -> std::result::Result<LogConfig, ConfigError> {
        let mut config = defaults.clone();
        for (key, value) in &self.configs {
            config.set(key, value)?;
        }
        Ok(config)
    }
}

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
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(FILE);
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

    pub fn insert(&mut self, topic: Topic) -> Result<()> {
        self.topics.insert(topic.name.clone(), topic);
        self.persist()
    }

    pub fn remove(&mut self, name: &str) -> Result<Option<Topic>> {
        let removed = self.topics.remove(name);
        self.persist()?;
        Ok(removed)
    }

    fn persist(&self) -> Result<()> {
        let mut text = String::new();
        for topic in self.topics.values() {
            let configs: Vec<String> = topic
                .configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            text.push_str(&format!(
                "{}\t{}\t{}\n",
                topic.name,
                topic.partitions,
                configs.join(",")
            ));
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_error(&self.path))
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = TopicStore::open(dir.path()).expect("open");
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        let topic = Topic {
            name: "a.b-c_1".to_string(),
            partitions: 3,
            configs,
        };
        store.insert(topic.clone()).expect("insert");
        let store = TopicStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("a.b-c_1"), Some(&topic));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(is_valid_topic_name("orders.v1-eu_2"));
        for bad in ["", ".", "..", "has space", "slash/no", &"x".repeat(250)] {
            assert!(!is_valid_topic_name(bad), "{bad}");
        }
    }
}
