//! Framing, request headers, the supported-version table, dispatch.

pub mod dispatch;
pub mod frame;
pub mod versions;
