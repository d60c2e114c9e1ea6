//! One client connection, pipelined: a reader decodes frames and starts each
//! request's handler at once, a writer sends the responses strictly in
//! request order. So a producer with several requests in flight gets them
//! appended back to back and covered by one group-commit fdatasync, instead
//! of paying one fsync per request. Requests in flight per connection are
//! bounded (`limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX`); reading pauses at
//! the bound (back-pressure through TCP). The bytes go over a
//! `transport::Transport` (plain TCP, or TLS from tls_transport.rs) that
//! both tasks share. On SASL listeners the reader first runs the
//! authenticator (security/sasl.rs): until it admits the client, only
//! ApiVersions and the SASL exchange are served.

use crate::api::context::Principal;
use crate::api::fetch_response::Part;
use crate::api::reply::{self, Outcome};
use crate::core::Core;
use crate::limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX;
use crate::metrics::CloseReason;
use crate::protocol::decode::{decode, Body};
use crate::protocol::dispatch;
use crate::protocol::frame::{FrameError, FrameReader};
use crate::security::sasl::{Admit, Authenticator, Next, SaslSettings};
use crate::security::{scram, ListenerSecurity};
use crate::tls_transport::Tls;
use crate::transport::{self, PlainTcp, Reader, Transport};
use bytes::{BufMut, BytesMut};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::Task;
use kafka_protocol::messages::ApiKey;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::Event;

/// A TLS handshake not done by then closes the connection.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Set when the writer gives up, so the reader stops too.
struct Closing {
    closed: Cell<bool>,
    event: Event,
}

/// Serves an accepted connection of `listener`: over TLS after the
/// handshake on SSL listeners, after SASL authentication on SASL ones.
pub async fn serve(core: Rc<Core>, stream: TcpStream, listener: &ListenerSecurity) {
    let peer = stream.peer_addr().ok();
    let sasl = listener.sasl.clone();
    let Some(tls) = &listener.tls else {
        match PlainTcp::new(stream, &listener.name) {
            Ok(transport) => serve_transport(core, transport, sasl).await,
            Err(error) => tracing::debug!(%error, "connection gone before it was served"),
        }
        return;
    };
    let acceptor = tls.acceptor();
    let handshake = glommio::timer::timeout(TLS_HANDSHAKE_TIMEOUT, async {
        acceptor
            .accept(stream)
            .await
            .map_err(glommio::GlommioError::IoError)
    })
    .await;
    let transport = handshake.map_err(|e| e.to_string()).and_then(|stream| {
        Tls::new(stream, &listener.name, &listener.principal_mapper).map_err(|e| e.to_string())
    });
    match transport {
        Ok(transport) => serve_transport(core, transport, sasl).await,
        // A plaintext client on a TLS port ends here too. Logged once
        // per (client IP, reason) on this core, so a client retrying in a
        // loop does not flood the log.
        Err(error) => {
            core.counters.closed_by_broker(CloseReason::TlsHandshake);
            if let Some(peer) = peer {
                let reason = format!("{} listener: TLS handshake failed: {error}", listener.name);
                core.refusals
                    .warn_once(&peer.ip().to_string(), peer, &reason);
            }
        }
    }
}

/// Serves one connection over any transport until it closes or misbehaves.
/// The reader (this task) and the writer task share the transport. With
/// `sasl`, nothing but ApiVersions is served until the client has
/// authenticated (security/sasl.rs has the rules).
pub async fn serve_transport<T: Transport>(
    core: Rc<Core>,
    transport: T,
    sasl: Option<Arc<SaslSettings>>,
) {
    let transport = Rc::new(transport);
    let peer = transport.info().peer;
    let mut info = Rc::new(transport.info().clone());
    let mut authenticator = sasl.map(Authenticator::new);
    let closing = Rc::new(Closing {
        closed: Cell::new(false),
        event: Event::default(),
    });
    let (queue, responses) =
        local_channel::new_bounded::<Task<Outcome>>(CONNECTION_REQUESTS_IN_FLIGHT_MAX);
    let writer = glommio::spawn_local(write_responses(
        transport.clone(),
        responses,
        closing.clone(),
    ));
    let mut reader = Reader(&*transport);
    let mut frames = FrameReader::default();
    // What this connection holds of queued.max.request.bytes.
    let held = Rc::new(crate::request_room::Held::default());
    let idle_max = (core.config.connections_max_idle_ms > 0)
        .then(|| std::time::Duration::from_millis(core.config.connections_max_idle_ms));
    // When this connection began waiting for its next request. One idle
    // watch lives as long as the connection and sleeps until that instant
    // plus `connections.max.idle.ms`, going back to sleep if a request came
    // meanwhile: a timer per request (armed and cancelled in glommio's
    // timer map for every frame) cost about 1% of a producing core.
    let waiting_since = Cell::new(Instant::now());
    let mut idle = std::pin::pin!(async {
        let Some(idle_max) = idle_max else {
            return std::future::pending().await;
        };
        loop {
            let deadline = waiting_since.get() + idle_max;
            let now = Instant::now();
            if now >= deadline {
                return Read::Idle;
            }
            glommio::timer::sleep(deadline - now).await;
        }
    });
    loop {
        let closed = closing.event.listen();
        if closing.closed.get() {
            break;
        }
        waiting_since.set(Instant::now());
        let bytes_max = authenticator
            .as_ref()
            .map_or(core.config.request_bytes_max, |a| {
                a.frame_bytes_max(core.config.request_bytes_max)
            });
        let next = async {
            let read = async {
                let len = frames.next_size(&mut reader, bytes_max).await?;
                // Room first (queued.max.request.bytes): until answers
                // give some back, this connection reads no further.
                let room = core.request_room(len, &held).await;
                Ok((frames.body(&mut reader, len).await?, room))
            };
            Read::Frame(read.await)
        };
        let stop = async {
            closed.await;
            Read::Closed
        };
        let (frame, room) =
            match futures_lite::future::or(next, futures_lite::future::or(stop, idle.as_mut()))
                .await
            {
                Read::Closed => break,
                Read::Idle => {
                    core.counters.closed_by_broker(CloseReason::Idle);
                    tracing::debug!(%peer, "closing a connection idle for connections.max.idle.ms");
                    break;
                }
                Read::Frame(Ok(read)) => read,
                Read::Frame(Err(FrameError::Closed)) => break,
                Read::Frame(Err(FrameError::Io(error))) if ended_by_peer(&error) => {
                    // The client reset the connection (closing a socket
                    // with answers it had not read does that) or stopped
                    // inside a frame: its close, not the broker's.
                    tracing::debug!(%peer, %error, "connection ended by the client");
                    break;
                }
                Read::Frame(Err(error)) => {
                    core.counters.closed_by_broker(CloseReason::BadFrame);
                    tracing::warn!(%peer, %error, "closing connection");
                    break;
                }
            };
        let frame = match authenticator.as_mut() {
            None => frame,
            Some(authenticator) => match sasl_step(&core, authenticator, frame) {
                SaslStep::Serve(frame) => frame,
                SaslStep::Answer(outcome, next) => {
                    let answered = queue
                        .send(glommio::spawn_local(async move { outcome }))
                        .await;
                    match next {
                        Next::Continue => {}
                        Next::Authenticated(user) => {
                            let mut authenticated = (*info).clone();
                            authenticated.principal = Principal {
                                kind: "User",
                                name: user,
                            };
                            info = Rc::new(authenticated);
                        }
                        Next::Close(reason) => {
                            core.counters.closed_by_broker(CloseReason::Authentication);
                            tracing::info!(%peer, %reason, "closing connection");
                            break;
                        }
                    }
                    if answered.is_err() {
                        break;
                    }
                    continue;
                }
                SaslStep::Close(reason) => {
                    core.counters.closed_by_broker(CloseReason::Authentication);
                    tracing::info!(%peer, %reason, "closing connection");
                    break;
                }
            },
        };
        let Some(in_flight) = core.request_started() else {
            tracing::debug!(%peer, "stopping: closing the connection instead of serving a request");
            break;
        };
        let (core, info) = (core.clone(), info.clone());
        let arrived = Instant::now();
        let task = glommio::spawn_local(async move {
            let outcome = dispatch::handle(&core, frame, &info, arrived).await;
            drop((in_flight, room));
            outcome
        });
        if queue.send(task).await.is_err() {
            break;
        }
    }
    drop(queue);
    writer.await;
}

/// Whether a read error means the client went away rather than sent
/// something wrong.
fn ended_by_peer(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// What ended the wait for a connection's next request.
enum Read {
    Frame(Result<(BytesMut, Option<crate::request_room::RoomPermit>), FrameError>),
    /// The writer closed the connection.
    Closed,
    /// No whole request for `connections.max.idle.ms`.
    Idle,
}

enum SaslStep {
    /// Not SASL's business: serve the frame as any request.
    Serve(BytesMut),
    /// Write this, then go on as `Next` says.
    Answer(Outcome, Next),
    /// Close without answering.
    Close(String),
}

/// One frame through the connection's authenticator.
fn sasl_step(core: &Rc<Core>, authenticator: &mut Authenticator, frame: BytesMut) -> SaslStep {
    let now = Instant::now();
    let lookup = |user: &str, mechanism: scram::Mechanism| {
        core.image()
            .scram_credential(user, mechanism.code())
            .cloned()
    };
    if authenticator.expects_raw_token() {
        // After a v0 handshake: the frame is the token, the answer a
        // size-prefixed token; a failure just closes.
        let answer = authenticator.authenticate(
            0,
            &frame,
            now,
            lookup,
            scram::server_nonce,
            scram::decoy_salt,
        );
        if answer.response.error_code != 0 {
            return SaslStep::Close(match answer.next {
                Next::Close(reason) => reason,
                _ => "SASL authentication failed".into(),
            });
        }
        let token = answer.response.auth_bytes;
        let mut out = BytesMut::with_capacity(4 + token.len());
        out.put_u32(token.len() as u32);
        out.extend_from_slice(&token);
        return SaslStep::Answer(Outcome::Respond(out), answer.next);
    }
    let Some(api) = frame
        .get(0..2)
        .and_then(|b| ApiKey::try_from(i16::from_be_bytes([b[0], b[1]])).ok())
    else {
        return SaslStep::Close("unknown API before SASL authentication".into());
    };
    match authenticator.admit(api, now) {
        Admit::Serve => return SaslStep::Serve(frame),
        Admit::Close(reason) => return SaslStep::Close(reason),
        Admit::Sasl => {}
    }
    let decoded = match decode(frame) {
        Ok(decoded) => decoded,
        Err(error) => return SaslStep::Close(error.to_string()),
    };
    let (version, correlation) = (decoded.version, decoded.correlation_id);
    match decoded.body {
        Body::Request(crate::api::Request::SaslHandshake(request)) => {
            let answer = authenticator.handshake(version, request.mechanism.as_str());
            let outcome = reply::encode_frame(api, version, correlation, &answer.response);
            SaslStep::Answer(outcome, answer.next)
        }
        Body::Request(crate::api::Request::SaslAuthenticate(request)) => {
            let answer = authenticator.authenticate(
                version,
                &request.auth_bytes,
                now,
                lookup,
                scram::server_nonce,
                scram::decoy_salt,
            );
            let outcome = reply::encode_frame(api, version, correlation, &answer.response);
            SaslStep::Answer(outcome, answer.next)
        }
        _ => SaslStep::Close(format!("{api:?} is not a SASL request")),
    }
}

/// Responses written in one send at most: enough to cover what one group
/// commit completes on a pipelining connection, few enough that a send
/// stays one socket buffer or so.
const RESPONSES_PER_SEND_MAX: usize = 16;

async fn write_responses<T: Transport>(
    transport: Rc<T>,
    responses: local_channel::LocalReceiver<Task<Outcome>>,
    closing: Rc<Closing>,
) {
    let peer = transport.info().peer;
    // A request taken from the queue whose answer was not ready yet.
    let mut waiting: Option<Task<Outcome>> = None;
    loop {
        let task = match waiting.take() {
            Some(task) => task,
            None => match responses.recv().await {
                Some(task) => task,
                None => break,
            },
        };
        // The next answer in order, then every one after it that is
        // already done (a group commit completes several requests of a
        // pipelining producer at once): one send for all of them.
        let mut ready = vec![task.await];
        while ready.len() < RESPONSES_PER_SEND_MAX {
            let Some(Some(mut next)) = futures_lite::future::poll_once(responses.recv()).await
            else {
                break;
            };
            match futures_lite::future::poll_once(&mut next).await {
                Some(outcome) => ready.push(outcome),
                None => {
                    waiting = Some(next);
                    break;
                }
            }
        }
        let mut parts: Vec<Part> = Vec::with_capacity(ready.len());
        let mut close = false;
        for outcome in ready {
            match outcome {
                Outcome::Respond(bytes) => parts.push(Part::Owned(bytes.freeze())),
                Outcome::RespondParts(more) => parts.extend(more),
                Outcome::Silent => {}
                Outcome::Close(reason) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    close = true;
                    break;
                }
                Outcome::Refused(reason) => {
                    tracing::debug!(%peer, %reason, "closing connection");
                    close = true;
                    break;
                }
            }
        }
        // Answers before a close still go out, as they did one by one.
        let slices: Vec<&[u8]> = parts.iter().map(Part::as_slice).collect();
        let written = match transport.write_parts(&slices).await {
            Ok(()) => transport::flush(&*transport).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::debug!(%peer, %error, "connection writer stops");
            break;
        }
        if close {
            break;
        }
    }
    closing.closed.set(true);
    closing.event.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::context::ConnectionInfo;
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use glommio::net::UnixStream;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::cell::RefCell;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A connection over a Unix socketpair: not TCP, and `write_parts` is
    /// the trait's default (each part through `poll_write`).
    struct Unix {
        stream: RefCell<UnixStream>,
        info: ConnectionInfo,
    }

    impl Transport for Unix {
        fn info(&self) -> &ConnectionInfo {
            &self.info
        }
        fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)
        }
        fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
        }
    }

    async fn one_core(dir: &std::path::Path) -> Rc<Core> {
        let config = crate::config::Config::resolve(crate::config::Flags {
            cores: Some(1),
            data_dir: Some(dir.to_path_buf()),
            ..crate::config::Flags::default()
        })
        .expect("config");
        let controller =
            controller::Controller::start(config.controller_config()).expect("controller");
        let cluster = crate::metadata::cluster::Cluster::new(
            config.node_id,
            controller,
            1,
            crate::log_dirs::LogDirs::new(&config.log_dirs()),
        );
        let (router, requests) = crate::router::Router::mesh(1)
            .into_iter()
            .next()
            .expect("one core");
        let (core, updates) = Core::open(config, cluster, router).await.expect("core");
        glommio::spawn_local(crate::router::serve(core.clone(), requests)).detach();
        glommio::spawn_local(core.clone().follow_metadata(updates)).detach();
        glommio::spawn_local(crate::membership::run(core.clone())).detach();
        // A single voter registers and is unfenced within milliseconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !core.cluster.is_unfenced() {
            assert!(
                std::time::Instant::now() < deadline,
                "broker never unfenced"
            );
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        core
    }

    fn frame<R: Encodable + HeaderVersion>(
        api: ApiKey,
        version: i16,
        id: i32,
        request: &R,
    ) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("transport-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header");
        request.encode(&mut body, version).expect("request");
        let mut framed = BytesMut::new();
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        framed.to_vec()
    }

    async fn response<R: Decodable>(
        client: &mut UnixStream,
        api: ApiKey,
        version: i16,
        id: i32,
    ) -> R {
        let mut size = [0u8; 4];
        client.read_exact(&mut size).await.expect("size");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        client.read_exact(&mut body).await.expect("body");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, id, "answered in order");
        let decoded = R::decode(&mut body, version).expect("response body");
        assert_eq!(body.remaining(), 0);
        decoded
    }

    fn topic(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.to_string()))
    }

    #[test]
    fn a_connection_is_served_over_a_transport_that_is_not_tcp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let fetched = crate::transport::tests::run(async move {
            let core = one_core(&path).await;
            let (server, mut client) = UnixStream::pair().expect("socketpair");
            let transport = Unix {
                stream: RefCell::new(server),
                info: ConnectionInfo {
                    peer: "192.0.2.7:4242".parse().expect("addr"),
                    listener: "TEST".into(),
                    principal: Principal::anonymous(),
                },
            };
            let served = glommio::spawn_local(serve_transport(core, transport, None));

            use kafka_protocol::messages::create_topics_request::CreatableTopic;
            let create = CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic("over-unix"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]);
            let sent = frame(ApiKey::CreateTopics, 7, 1, &create);
            client.write_all(&sent).await.expect("send");
            let created: CreateTopicsResponse =
                response(&mut client, ApiKey::CreateTopics, 7, 1).await;
            assert_eq!(created.topics[0].error_code, 0);

            use kafka_protocol::messages::produce_request::{
                PartitionProduceData, TopicProduceData,
            };
            let records = Bytes::from(storage::batch::build_batch(
                &[b"through the seam"],
                1_700_000_000_000,
            ));
            let produce = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic("over-unix"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records))])]);
            use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
            let fetch = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(10_000)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic("over-unix"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]);
            // Pipelined: the fetch may long-poll until the produce behind
            // it lands; the answers still come back in request order.
            let mut pipelined = frame(ApiKey::Fetch, 12, 2, &fetch);
            pipelined.extend(frame(ApiKey::Produce, 9, 3, &produce));
            pipelined.extend(frame(
                ApiKey::ApiVersions,
                3,
                4,
                &ApiVersionsRequest::default(),
            ));
            client.write_all(&pipelined).await.expect("send");
            let fetched: FetchResponse = response(&mut client, ApiKey::Fetch, 12, 2).await;
            let produced: ProduceResponse = response(&mut client, ApiKey::Produce, 9, 3).await;
            assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
            let versions: ApiVersionsResponse =
                response(&mut client, ApiKey::ApiVersions, 3, 4).await;
            assert_eq!(versions.error_code, 0);

            drop(client);
            served.await; // the end of the stream ends the connection
            fetched
        });
        let partition = &fetched.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.high_watermark, 1);
        let records = partition.records.as_ref().expect("records");
        assert!(records.windows(16).any(|w| w == b"through the seam"));
    }
}
