//! Framing, request decoding, the supported-version table, dispatch.

pub mod decode;
pub mod dispatch;
pub mod fetch_response;
pub mod frame;
pub mod versions;
