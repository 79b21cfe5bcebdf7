//! The part of handling a message that needs no sync state: decoding, and checking each
//! envelope's signature. The daemon runs it off its node thread, so that during a catch-up
//! the next batch is verified while the node stores and applies the last one.

use kith_crypto::{AuthorKey, CircleId, Envelope};

use crate::{Message, SyncError};

/// A sync message decoded, with the verdict on each envelope's signature. Only
/// [`Prechecked::new`] makes one, so a verdict cannot be claimed without the check.
#[derive(Debug)]
pub struct Prechecked {
    pub(crate) decoded: Result<Message, SyncError>,
    /// For an envelopes message, whether each envelope's signature verified, in order.
    pub(crate) signatures: Vec<bool>,
    /// The sender was already asked for what follows this batch (see
    /// [`Message::continuation`]): handling it must not ask again.
    pub(crate) continued: bool,
}

impl Prechecked {
    /// Decodes `bytes` and, for a batch of envelopes, verifies every signature.
    pub fn new(bytes: &[u8]) -> Prechecked {
        Prechecked::check(Message::decode(bytes))
    }

    /// Verifies every signature of a message decoded already.
    pub fn check(decoded: Result<Message, SyncError>) -> Prechecked {
        let signatures = match &decoded {
            Ok(Message::Envelopes { envelopes, .. }) => verify_all(envelopes),
            _ => Vec::new(),
        };
        Prechecked {
            decoded,
            signatures,
            continued: false,
        }
    }

    /// Records that the sender was already asked for what follows this batch, so that
    /// handling it does not ask a second time.
    pub fn mark_continued(&mut self) {
        self.continued = true;
    }

    /// The circle the message is about, if it decoded.
    pub fn circle(&self) -> Option<CircleId> {
        self.decoded.as_ref().ok().map(Message::circle)
    }
}

/// Each envelope's signature verdict. A batch has few distinct authors: each author's key
/// is parsed once (parsing costs about as much as a verification).
pub(crate) fn verify_all(envelopes: &[Envelope]) -> Vec<bool> {
    let mut keys: Vec<AuthorKey> = Vec::new();
    envelopes
        .iter()
        .map(|envelope| {
            let author = &envelope.header.author;
            let key = match keys.iter().find(|k| k.member() == author) {
                Some(key) => *key,
                None => match AuthorKey::parse(author) {
                    Ok(key) => {
                        keys.push(key);
                        key
                    }
                    Err(_) => return false,
                },
            };
            envelope.verify_with(&key).is_ok()
        })
        .collect()
}
