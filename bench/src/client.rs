//! The shared lean client (crate `client`).
pub use client::*;
