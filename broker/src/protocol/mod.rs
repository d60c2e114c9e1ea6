//! Framing, the request header and its version checks, and the hand-off to
//! the API table (`api::dispatch`).

pub mod decode;
pub mod dispatch;
pub mod frame;
