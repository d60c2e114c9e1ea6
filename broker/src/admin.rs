//! The admin HTTP endpoint (`sluice.admin.listen`, Redpanda's admin port
//! 9644): `/metrics` (OpenMetrics text), `/v1/status/live` and
//! `/v1/status/ready`. It runs on threads of its own, never on a core: a
//! scrape asks each core for its snapshot through the router
//! (metrics/mod.rs) and waits here, so a slow scraper or a bad request
//! costs a core nothing but copying its counters.
//!
//! HTTP/1.x, one request per connection (`Connection: close`), request head
//! capped at `REQUEST_HEAD_BYTES_MAX`, a few connections at once; anything
//! else gets a 4xx and the Kafka listeners never notice.

use crate::core::Core;
use crate::metadata::cluster::Cluster;
use crate::metrics::collect::Scrape;
use crate::router::Router;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request head longer than this gets 431.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Connections served at once; more are closed at accept.
const CONNECTIONS_MAX: usize = 8;
/// How long a connection may take to send its request or read the answer.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for each core.
const CORE_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long and how much of a request's rest is read after the answer.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const LINGER_BYTES_MAX: usize = 64 * 1024;
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint reads from the broker.
pub struct Admin {
    pub node_id: i32,
    /// The cores to scrape; None on a controller-only node.
    pub router: Option<Router<Core>>,
    pub cluster: Arc<Cluster>,
    /// Every core opened its partitions (server.rs sets it).
    pub opened: Arc<AtomicBool>,
    /// The client listeners' names, in `listeners` order.
    pub listeners: Vec<String>,
}

impl Admin {
    /// Ready: every core opened its partitions and this broker is
    /// registered and unfenced (a broker-only or combined node alike).
    /// A controller-only node: ready once the quorum has a leader.
    fn ready(&self) -> bool {
        match &self.router {
            Some(_) => self.opened.load(Ordering::Relaxed) && self.cluster.is_unfenced(),
            None => self.cluster.controller.local_status().leader.is_some(),
        }
    }

    fn scrape(&self) -> Result<String, std::fmt::Error> {
        let cores = self.router.as_ref().map_or(0, |r| r.cores());
        let snapshots = match &self.router {
            None => Vec::new(),
            Some(router) => (0..cores)
                .filter_map(|core| {
                    router.call_blocking(
                        core,
                        |core| async move { core.snapshot() },
                        CORE_ANSWER_TIMEOUT,
                    )
                })
                .collect(),
        };
        Scrape {
            node_id: self.node_id,
            cores,
            snapshots,
            ready: self.ready(),
            listeners: self.listeners.clone(),
            cluster: crate::metrics::ClusterSnapshot::of(
                self.node_id,
                &self.cluster.controller.image(),
                &self.cluster.controller.local_status(),
                self.cluster.controller.commit_latency(),
            ),
        }
        .encode()
    }
}

/// Binds `address` (so a taken port fails the start) and serves it on a
/// thread of its own; the bound address (port 0 picks one).
pub fn start(address: SocketAddr, admin: Admin) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    let admin = Arc::new(admin);
    std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || accept_forever(listener, admin))?;
    Ok(bound)
}

fn accept_forever(listener: TcpListener, admin: Arc<Admin>) {
    let serving = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            continue;
        };
        if serving.fetch_add(1, Ordering::Relaxed) >= CONNECTIONS_MAX {
            serving.fetch_sub(1, Ordering::Relaxed);
            continue; // dropped: closed
        }
        let (admin, serving) = (admin.clone(), serving.clone());
        let spawned = std::thread::Builder::new()
            .name("sluice-admin-conn".into())
            .spawn(move || {
                serve(stream, &admin);
                serving.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            tracing::warn!("admin endpoint: cannot start a connection thread");
        }
    }
}

/// An answer: status line, content type, body.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Answer {
    fn text(status: &'static str, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            allow: false,
        }
    }
}

fn serve(mut stream: TcpStream, admin: &Admin) {
    let _ = stream.set_read_timeout(Some(SOCKET_TIMEOUT));
    let _ = stream.set_write_timeout(Some(SOCKET_TIMEOUT));
    let (answer, head_only) = match read_head(&mut stream) {
        Ok(head) => match parse_request_line(&head) {
            Ok((method, path)) => (route(admin, method, path), method == "HEAD"),
            Err(answer) => (answer, false),
        },
        Err(answer) => (answer, false),
    };
    let allow = if answer.allow {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(answer.body.as_bytes());
    }
    // A lingering close: closing with unread request bytes would reset the
    // connection and the client could lose the answer (a 431, say).
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER_TIMEOUT));
    let mut unread = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES_MAX {
        match stream.read(&mut unread) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn route(admin: &Admin, method: &str, path: &str) -> Answer {
    if method != "GET" && method != "HEAD" {
        let mut answer = Answer::text("405 Method Not Allowed", "only GET and HEAD");
        answer.allow = true;
        return answer;
    }
    // A query string is ignored, as Prometheus' own endpoints do.
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/metrics" => match admin.scrape() {
            Ok(body) => Answer {
                status: "200 OK",
                content_type: OPENMETRICS,
                body,
                allow: false,
            },
            Err(_) => Answer::text("500 Internal Server Error", "metrics could not be encoded"),
        },
        "/v1/status/live" => Answer::text("200 OK", "live"),
        "/v1/status/ready" if admin.ready() => Answer::text("200 OK", "ready"),
        "/v1/status/ready" => Answer::text(
            "503 Service Unavailable",
            "not ready: partitions still opening, or not registered and unfenced",
        ),
        _ => Answer::text(
            "404 Not Found",
            "not found: /metrics, /v1/status/live, /v1/status/ready",
        ),
    }
}

/// The request head, up to the blank line.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Answer> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        if let Some(end) = find_blank_line(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return Err(Answer::text(
                "431 Request Header Fields Too Large",
                "request head too large",
            ));
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return Err(Answer::text("400 Bad Request", "incomplete request")),
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// `METHOD SP PATH SP HTTP/1.x` of the head's first line.
fn parse_request_line(head: &[u8]) -> Result<(&str, &str), Answer> {
    let bad = || Answer::text("400 Bad Request", "malformed request line");
    let line = head.split(|&b| b == b'\r').next().unwrap_or(head);
    let line = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') || method.is_empty() {
        return Err(bad());
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    Ok((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_or_are_refused() {
        let ok = parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x").map_err(|a| a.status);
        assert_eq!(ok, Ok(("GET", "/metrics")));
        for bad in [
            &b"GET /metrics"[..],
            b"GET metrics HTTP/1.1",
            b"GET /metrics HTTP/2",
            b"get /metrics HTTP/1.1",
            b"GET  /metrics HTTP/1.1",
            b"GET /a b HTTP/1.1",
            b"\xff\xfe /x HTTP/1.1",
            b"",
        ] {
            let answer = parse_request_line(bad).map(|_| ()).map_err(|a| a.status);
            assert_eq!(answer, Err("400 Bad Request"), "{bad:?}");
        }
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(
            find_blank_line(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"),
            Some(20)
        );
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n"), None);
    }
}
