//! Private items: content sealed for a chosen audience.
//!
//! kith-core does no cryptography itself (no keys, no randomness): the caller hands a
//! [`Keyring`] to the circle, and the daemon implements it with the member's identity
//! (kith-crypto's `sealed` module). What is sealed is the item's [`Content`] as JSON; what
//! stays in the open beside it (status, claims, slots, times) is what the rules of who may
//! write what need, so that members who cannot read an item still check every change to it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::CoreError;

/// The most members a private item may name (besides its author).
pub const MAX_AUDIENCE: usize = 49;
/// The largest sealed content a reader will try to parse.
pub(crate) const MAX_SEALED_BYTES: usize = 64 * 1024;

/// A private item's content key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct ItemSecret(Zeroizing<[u8; 32]>);

impl ItemSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> ItemSecret {
        ItemSecret(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ItemSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ItemSecret(..)")
    }
}

/// The keys of one private item this member can open: the one made with it (generation
/// 0) and the renewals made after readers were removed, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct ItemKeys(Vec<(u32, ItemSecret)>);

impl ItemKeys {
    pub(crate) fn new(first: ItemSecret) -> ItemKeys {
        ItemKeys(vec![(0, first)])
    }

    pub(crate) fn add(&mut self, generation: u32, key: ItemSecret) {
        if self.get(generation).is_none() {
            self.0.push((generation, key));
            self.0.sort_by_key(|(g, _)| *g);
        }
    }

    pub(crate) fn get(&self, generation: u32) -> Option<&ItemSecret> {
        self.0
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, k)| k)
    }

    /// The newest key: what new parts are sealed with.
    pub(crate) fn newest(&self) -> Option<(u32, &ItemSecret)> {
        self.0.last().map(|(g, k)| (*g, k))
    }
}

/// Seals and opens private items as the local member of one circle.
pub trait Keyring: Send + Sync + fmt::Debug {
    /// Seals the content of new item `item` for `readers` (member ids; the local member,
    /// its author, can always read it). Returns the item's key, the readers' key slots and
    /// the sealed content.
    fn seal_item(
        &self,
        item: &str,
        readers: &[String],
        plaintext: &[u8],
    ) -> Result<(ItemSecret, Vec<u8>, Vec<u8>), CoreError>;

    /// Opens item `item` written by `author`; `None` when the local member is not a
    /// reader or anything does not check out.
    fn open_item(
        &self,
        item: &str,
        author: &str,
        key_slots: &[u8],
        sealed: &[u8],
    ) -> Option<(ItemSecret, Zeroizing<Vec<u8>>)>;

    /// Seals a part of a private item (a reply, a claim's message, a thanks note) under
    /// its key of generation `generation` (0: the key made with the item); `part` names
    /// where it goes, so that it cannot be moved elsewhere.
    fn seal_part(
        &self,
        key: &ItemSecret,
        generation: u32,
        item: &str,
        part: &str,
        plaintext: &[u8],
    ) -> Vec<u8>;

    /// Which key generation a sealed part needs.
    fn part_generation(&self, sealed: &[u8]) -> Option<u32>;

    /// A new key (generation `generation`) for item `item`, wrapped for `readers` (and
    /// the local member, its author): the key and the renewal to store.
    fn rekey_item(
        &self,
        item: &str,
        readers: &[String],
        generation: u32,
    ) -> Result<(ItemSecret, Vec<u8>), CoreError>;

    /// Opens a renewal of item `item` by `author`; `None` when not a reader of it.
    fn open_rekey(
        &self,
        item: &str,
        author: &str,
        generation: u32,
        renewal: &[u8],
    ) -> Option<ItemSecret>;

    fn open_part(
        &self,
        key: &ItemSecret,
        item: &str,
        part: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>>;
}

/// What a private item says, sealed as JSON with one-letter keys. Every field is optional
/// so that one shape serves check-ins, requests, offers and nudges.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Content {
    /// Member ids of the readers besides the author, so that each reader knows who else
    /// can read it.
    #[serde(rename = "a", default)]
    pub audience: Vec<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<u8>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub needed_by: Option<i64>,
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<i64>,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub helpers: Option<u32>,
    /// Offers: when the offer holds.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Nudges: the member asked to check in.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Slot id -> time, for a private recurring need.
    #[serde(rename = "l", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, i64>,
}

impl Content {
    pub(crate) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| CoreError::Document(format!("cannot encode private content: {e}")))
    }

    /// Parses opened content; `None` for anything malformed or oversized.
    pub(crate) fn from_json(bytes: &[u8]) -> Option<Content> {
        if bytes.len() > MAX_SEALED_BYTES {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

/// Part names bound into sealed parts.
pub(crate) fn reply_part(reply_id: &str) -> String {
    format!("reply:{reply_id}")
}

pub(crate) fn claim_part(slot: Option<&str>, member: &str) -> String {
    match slot {
        Some(slot) => format!("claim:{slot}:{member}"),
        None => format!("claim:{member}"),
    }
}

pub(crate) fn thanks_part(member: &str) -> String {
    format!("thanks:{member}")
}
