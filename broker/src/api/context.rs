//! What every handler is told about the request besides its body: the API
//! and version, the header's correlation and client ids, and the
//! connection it came on (peer, listener, authenticated principal).

use crate::core::Core;
use crate::security::authorizer::Caller;
use bytes::Bytes;
use controller::acl::{resource, CLUSTER_NAME};
use kafka_protocol::messages::ApiKey;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Kafka's `KafkaPrincipal`: type and name, written `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: &'static str,
    pub name: String,
}

impl Principal {
    /// Plain TCP, and TLS without a client certificate, as in Kafka.
    pub fn anonymous() -> Principal {
        Principal {
            kind: "User",
            name: "ANONYMOUS".to_string(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// One connection's facts, shared by all its requests; the transport
/// (transport.rs) fills them in.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// The listener that accepted it (`PLAINTEXT`, later `SSL`, ...).
    pub listener: Rc<str>,
    /// Authenticated by the transport (mTLS) or, later, by SASL.
    pub principal: Principal,
}

impl ConnectionInfo {
    /// The client's IP without the port, as ACL hosts match it.
    pub fn host(&self) -> String {
        self.peer.ip().to_string()
    }

    /// The client host as Kafka shows it in DescribeGroups ("/127.0.0.1").
    pub fn client_host(&self) -> String {
        format!("/{}", self.host())
    }
}

pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The header's client id ("" when null).
    pub client_id: String,
    pub connection: Rc<ConnectionInfo>,
    /// The whole request frame, for Produce only: once the decoded request
    /// is dropped, taking it back gives the record batches' memory unique
    /// ownership, so offsets are written in place instead of into a copy.
    frame: Cell<Option<Bytes>>,
}

impl RequestContext {
    /// The caller as the authorizer sees it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            kind: self.connection.principal.kind,
            name: &self.connection.principal.name,
            // An IPv4 client of a dual-stack listener shows as
            // ::ffff:a.b.c.d; ACL hosts name it a.b.c.d, as Java sees it.
            host: self.connection.peer.ip().to_canonical(),
        }
    }

    /// May the caller do `op` on the resource? For one check; a handler
    /// checking many resources takes `core.authorizer()` once.
    pub fn may(&self, core: &Core, op: i8, resource_type: i8, name: &str) -> bool {
        core.authorizer()
            .allows(&self.caller(), op, resource_type, name)
    }

    /// May the caller do `op` on the cluster resource?
    pub fn may_on_cluster(&self, core: &Core, op: i8) -> bool {
        self.may(core, op, resource::CLUSTER, CLUSTER_NAME)
    }

    pub fn new(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        client_id: String,
        connection: Rc<ConnectionInfo>,
    ) -> RequestContext {
        RequestContext {
            api,
            version,
            correlation_id,
            client_id,
            connection,
            frame: Cell::new(None),
        }
    }

    pub fn with_frame(self, frame: Bytes) -> RequestContext {
        self.frame.set(Some(frame));
        self
    }

    /// The request frame, once (see `frame`).
    pub fn take_frame(&self) -> Option<Bytes> {
        self.frame.take()
    }
}
