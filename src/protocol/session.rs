//! A worker's session: after registering, the agent turns one connection
//! into a session (`GET /v1/workers/{id}/session` with `Upgrade:
//! drover-session`, answered `101`), and from then on both sides send
//! frames over that TLS stream: the agent a heartbeat each interval (which
//! also says whether it drains and what it holds), the scheduler an
//! instruction whenever it has one, and an acknowledgement (`Continue`)
//! for a heartbeat that brought nothing. An idle worker so costs its
//! scheduler one TLS stream and no HTTP state, and hears of new work at
//! once, without polling again.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of JSON.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{paths, TaskRun, MAX_HELD_RUNS};

/// The `Upgrade` header's value that asks for a session.
pub const UPGRADE: &str = "drover-session";

/// The largest frame either side reads: the largest request body, since a
/// frame carries what a request did (a run of task assignments).
pub const MAX_FRAME: usize = paths::MAX_BODY;

/// What an agent sends over its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentFrame {
    /// The heartbeat: the agent is alive, drains or not, and holds these
    /// runs (a scheduler restarted from its journal compares them with
    /// what it handed out, as with a poll's `holding`).
    Heartbeat {
        /// It takes no more tasks.
        #[serde(default)]
        draining: bool,
        /// The runs it holds: running, or ended and not yet reported.
        #[serde(default)]
        holding: Vec<TaskRun>,
    },
}

impl AgentFrame {
    /// Whether the frame is within bounds (at most `MAX_HELD_RUNS` runs).
    pub fn is_bounded(&self) -> bool {
        match self {
            AgentFrame::Heartbeat { holding, .. } => holding.len() <= MAX_HELD_RUNS,
        }
    }
}

/// Why a stream of frames cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame announced more bytes than `MAX_FRAME`.
    #[error("a session frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    /// A frame is not the JSON of what was expected.
    #[error("a session frame is malformed: {0}")]
    Malformed(String),
}

/// `value` as one frame.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own types into memory cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Frames read from a byte stream, a piece at a time. It holds only the
/// bytes of a frame not yet whole, and gives its memory back once a frame
/// is taken, so an idle session holds none.
#[derive(Debug, Default)]
pub struct FrameReader {
    partial: Vec<u8>,
}

impl FrameReader {
    /// Takes in bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.partial.extend_from_slice(bytes);
        match self.announced() {
            Some(n) if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
            _ => Ok(()),
        }
    }

    /// The length the next frame announces, once its 4 bytes are in.
    fn announced(&self) -> Option<usize> {
        let head: [u8; 4] = self.partial.get(..4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(head)).ok()
    }

    /// The next whole frame, if one is in.
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(n) = self.announced() else {
            return Ok(None);
        };
        if n > MAX_FRAME {
            return Err(FrameError::TooLarge(n));
        }
        let Some(body) = self.partial.get(4..4 + n) else {
            return Ok(None);
        };
        let value = serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()));
        self.partial.drain(..4 + n);
        if self.partial.is_empty() {
            self.partial = Vec::new();
        }
        value.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Instruction, TaskId};

    #[test]
    fn frames_split_anywhere_are_read_back_whole_and_in_order() {
        let beat = AgentFrame::Heartbeat {
            draining: true,
            holding: vec![TaskRun {
                task: TaskId(7),
                attempt: 2,
            }],
        };
        let ack = Instruction::Continue { next_poll_ms: 0 };
        let mut bytes = encode(&beat);
        bytes.extend(encode(&beat));
        for cut in 0..bytes.len() {
            let mut reader = FrameReader::default();
            reader.push(&bytes[..cut]).unwrap();
            let mut got = Vec::new();
            while let Some(f) = reader.take::<AgentFrame>().unwrap() {
                got.push(f);
            }
            reader.push(&bytes[cut..]).unwrap();
            while let Some(f) = reader.take::<AgentFrame>().unwrap() {
                got.push(f);
            }
            assert_eq!(got, vec![beat.clone(), beat.clone()], "cut at {cut}");
            assert_eq!(reader.partial.capacity(), 0, "nothing held once read");
        }
        let mut reader = FrameReader::default();
        reader.push(&encode(&ack)).unwrap();
        assert_eq!(reader.take::<Instruction>().unwrap(), Some(ack));
    }

    #[test]
    fn an_oversized_or_malformed_frame_is_refused() {
        let mut reader = FrameReader::default();
        let too_big = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
        assert_eq!(
            reader.push(&too_big),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        let mut reader = FrameReader::default();
        let mut bad = 3u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"{x}");
        reader.push(&bad).unwrap();
        assert!(matches!(
            reader.take::<AgentFrame>(),
            Err(FrameError::Malformed(_))
        ));
        let many = AgentFrame::Heartbeat {
            draining: false,
            holding: vec![
                TaskRun {
                    task: TaskId(1),
                    attempt: 1
                };
                MAX_HELD_RUNS + 1
            ],
        };
        assert!(!many.is_bounded());
    }
}
