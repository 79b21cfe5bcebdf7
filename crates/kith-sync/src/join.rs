//! The `/kith/join/1` messages: JSON, bounded before parsing. A newcomer who is not yet a
//! member sends a [`JoinRequest`]; the admitter answers with a [`JoinAnswer`]. Here, with no
//! network types, so that the parsers are fuzzed without building the network stack.
#![allow(
    missing_docs,
    reason = "the fields are the wire format, documented in docs/protocol.md"
)]

use kith_crypto::{CircleId, decode_id};
use serde::{Deserialize, Serialize};

/// Longest join request read (bytes); longer ones are refused before parsing.
pub const MAX_JOIN_REQUEST: usize = 8 * 1024;

/// `/kith/join/1` request (JSON; bounded before parsing).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub v: u8,
    pub circle: String,
    pub invite: String,
    /// 64-byte join signature, as an id string.
    pub signature: String,
    /// The name the newcomer wants the circle to see.
    pub name: String,
}

/// `/kith/join/1` answer.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JoinAnswer {
    Admitted {
        circle: String,
        /// Every epoch key the admitter holds, wrapped for the newcomer.
        keys: Vec<WrappedEpoch>,
    },
    Refused {
        reason: String,
    },
}

/// One epoch key, wrapped for the newcomer.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedEpoch {
    pub epoch: u32,
    /// The 81-byte wrapped key, as an id string.
    pub key: String,
}

/// A `/kith/join/1` request that passed every check needing no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedJoin {
    pub circle: CircleId,
    /// The invite's id string, looked up in the circle's document.
    pub invite: String,
    /// The join signature, made with the invite's authority key.
    pub signature: [u8; 64],
    /// The name the newcomer asks for; kith-core's admission rules check it.
    pub name: String,
}

/// Parses a `/kith/join/1` request the way an admitter does before looking at any circle:
/// size (checked before parsing), JSON shape (unknown fields refused), version, circle id,
/// signature encoding. Pure, so the `join_json` fuzz target runs exactly this.
pub fn parse_join_request(bytes: &[u8]) -> Result<ParsedJoin, String> {
    if bytes.len() > MAX_JOIN_REQUEST {
        return Err("join request too large".into());
    }
    let request: JoinRequest =
        serde_json::from_slice(bytes).map_err(|_| "malformed join request".to_string())?;
    if request.v != 1 {
        return Err("unsupported join version".into());
    }
    let circle = request
        .circle
        .parse()
        .map_err(|_| "malformed circle id".to_string())?;
    let signature =
        decode_id::<64>(&request.signature).map_err(|_| "malformed signature".to_string())?;
    Ok(ParsedJoin {
        circle,
        invite: request.invite,
        signature,
        name: request.name,
    })
}
