//! Telling the operator why a client was refused. A request refused for a
//! reason other than ordinary client flow (an API or version the broker
//! does not serve, an invalid config, a transactional call) is logged at
//! WARN with the client id and peer, once per (client id, reason) on each
//! core, so a failing tool leaves one line saying why and a retrying one
//! does not flood the log. Single-threaded: one per core.

use crate::limits::{REFUSALS_LOGGED_PER_CORE_MAX, REFUSAL_KEY_CHARS_MAX};
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;

#[derive(Default)]
pub struct Refusals {
    /// (client id, reason) pairs already logged on this core.
    logged: RefCell<HashSet<(String, String)>>,
}

impl Refusals {
    /// Logs the refusal unless this (client id, reason) was logged here
    /// before; returns whether it logged. When the set is full it starts
    /// afresh, so memory stays bounded and a pair may be logged again.
    pub fn warn_once(&self, client_id: &str, peer: SocketAddr, reason: &str) -> bool {
        let key = (bounded(client_id), bounded(reason));
        {
            let mut logged = self.logged.borrow_mut();
            if logged.contains(&key) {
                return false;
            }
            if logged.len() >= REFUSALS_LOGGED_PER_CORE_MAX {
                logged.clear();
            }
            logged.insert(key);
        }
        tracing::warn!(client_id, %peer, reason, "refused request");
        true
    }
}

/// At most `REFUSAL_KEY_CHARS_MAX` characters of `text`.
fn bounded(text: &str) -> String {
    text.chars().take(REFUSAL_KEY_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_reason_is_logged_once_and_the_set_stays_bounded() {
        let refusals = Refusals::default();
        let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert!(refusals.warn_once("tool", peer, "api 99 not served"));
        assert!(!refusals.warn_once("tool", peer, "api 99 not served"));
        assert!(refusals.warn_once("other", peer, "api 99 not served"));
        assert!(refusals.warn_once("tool", peer, "INVALID_CONFIG"));
        for i in 0..REFUSALS_LOGGED_PER_CORE_MAX * 2 {
            refusals.warn_once(&format!("c{i}"), peer, "r");
        }
        assert!(refusals.logged.borrow().len() <= REFUSALS_LOGGED_PER_CORE_MAX);
    }
}
