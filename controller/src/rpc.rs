//! Frames on the controller listener: Raft messages between voters
//! (raft-rs's protobuf encoding), and requests from brokers (JSON).
//! `[u32 big-endian length][u8 kind][body]`, the length bounded before
//! anything is allocated. This is Sluice's own protocol, not KRaft's
//! Vote/BeginQuorumEpoch/Fetch RPCs: Kafka's tools do not talk to the
//! controller listener (DescribeQuorum is served on the broker listener).

use crate::decide::{ControllerError, Request};
use crate::image::MetadataImage;
use crate::node::Answer;
use crate::records::MetadataRecord;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

/// A frame larger than this is refused (a snapshot of a large cluster
/// stays far below it).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Raft = 1,
    Request = 2,
    Answer = 3,
    Fetch = 4,
    Fetched = 5,
    Status = 6,
    StatusAnswer = 7,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Raft,
            2 => Kind::Request,
            3 => Kind::Answer,
            4 => Kind::Fetch,
            5 => Kind::Fetched,
            6 => Kind::Status,
            7 => Kind::StatusAnswer,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("controller connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("undecodable frame: {0}")]
    Decode(String),
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    kind: Kind,
    body: &[u8],
) -> Result<(), RpcError> {
    let length = u32::try_from(body.len() + 1).map_err(|_| RpcError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.push(kind as u8);
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(Kind, Vec<u8>), RpcError> {
    let mut header = [0u8; 5];
    reader.read_exact(&mut header).await?;
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if length == 0 || length > FRAME_BYTES_MAX {
        return Err(RpcError::TooLarge(length));
    }
    let kind = Kind::from_byte(header[4]).ok_or(RpcError::UnknownKind(header[4]))?;
    let mut body = vec![0u8; length - 1];
    reader.read_exact(&mut body).await?;
    Ok((kind, body))
}

pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, RpcError> {
    serde_json::from_slice(body).map_err(|e| RpcError::Decode(e.to_string()))
}

pub fn encode_raft(message: &raft::prelude::Message) -> Vec<u8> {
    protobuf::Message::write_to_bytes(message).unwrap_or_default()
}

pub fn decode_raft(body: &[u8]) -> Result<raft::prelude::Message, RpcError> {
    protobuf::Message::parse_from_bytes(body).map_err(|e| RpcError::Decode(e.to_string()))
}

/// A broker's request, or a voter forwarding one.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestFrame {
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnswerFrame {
    pub answer: Answer,
}

/// A broker that does not vote follows the committed log from a voter.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchFrame {
    pub after: u64,
}

/// A voter's answer to a fetch, with the leader it knows (raft id), so a
/// broker without a vote knows the active controller too.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchAnswer {
    pub leader: Option<u64>,
    pub fetched: Fetched,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Fetched {
    Entries(Vec<(u64, Vec<MetadataRecord>)>),
    /// What was asked for is compacted: start over from this image.
    Image(MetadataImage),
    Refused(ControllerError),
}

/// The quorum as one voter sees it (DescribeQuorum, `sluice cluster info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied: u64,
    /// (voter, matched index); only the leader knows these.
    pub voters: Vec<(u64, u64)>,
}
