//! Placeholder: replication is not built yet.
