//! The member's keys for private items, as kith-core asks for them.

use std::sync::Arc;

use kith_core::{CoreError, ItemSecret, Keyring};
use kith_crypto::{CircleId, DeviceIdentity, ItemKey, MemberId, Secret};
use zeroize::Zeroizing;

/// Seals and opens private items of one circle as this device's member.
pub(crate) struct CircleKeyring {
    identity: DeviceIdentity,
    circle: CircleId,
}

impl std::fmt::Debug for CircleKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircleKeyring")
            .field("circle", &self.circle)
            .finish_non_exhaustive()
    }
}

impl CircleKeyring {
    pub(crate) fn shared(identity: &DeviceIdentity, circle: CircleId) -> Arc<dyn Keyring> {
        Arc::new(CircleKeyring {
            identity: DeviceIdentity::from_secret(&identity.secret()),
            circle,
        })
    }
}

fn to_item_key(secret: &ItemSecret) -> ItemKey {
    ItemKey(Secret::from_bytes(*secret.expose()))
}

fn to_secret(key: &ItemKey) -> ItemSecret {
    ItemSecret::from_bytes(*key.0.expose_secret())
}

impl Keyring for CircleKeyring {
    fn seal_item(
        &self,
        item: &str,
        readers: &[String],
        plaintext: &[u8],
    ) -> Result<(ItemSecret, Vec<u8>, Vec<u8>), CoreError> {
        let readers = readers
            .iter()
            .map(|r| r.parse::<MemberId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CoreError::Document(format!("a reader's id: {e}")))?;
        let (key, slots, body) = kith_crypto::seal_item(
            &self.identity,
            &readers,
            &self.circle,
            item,
            plaintext,
            &mut rand::rng(),
        )
        .map_err(|e| CoreError::Document(format!("cannot seal the item: {e}")))?;
        Ok((to_secret(&key), slots, body))
    }

    fn open_item(
        &self,
        item: &str,
        author: &str,
        key_slots: &[u8],
        sealed: &[u8],
    ) -> Option<(ItemSecret, Zeroizing<Vec<u8>>)> {
        let author = author.parse::<MemberId>().ok()?;
        let (key, plaintext) = kith_crypto::open_item(
            &self.identity,
            &author,
            &self.circle,
            item,
            key_slots,
            sealed,
        )
        .ok()?;
        Some((to_secret(&key), plaintext))
    }

    fn seal_part(
        &self,
        key: &ItemSecret,
        generation: u32,
        item: &str,
        part: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        kith_crypto::seal_part_at(
            &to_item_key(key),
            generation,
            &self.circle,
            item,
            part,
            plaintext,
            &mut rand::rng(),
        )
    }

    fn part_generation(&self, sealed: &[u8]) -> Option<u32> {
        kith_crypto::part_generation(sealed)
    }

    fn rekey_item(
        &self,
        item: &str,
        readers: &[String],
        generation: u32,
    ) -> Result<(ItemSecret, Vec<u8>), CoreError> {
        let readers = readers
            .iter()
            .map(|r| r.parse::<MemberId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CoreError::Document(format!("a reader's id: {e}")))?;
        let (key, renewal) = kith_crypto::rekey_item(
            &self.identity,
            &readers,
            &self.circle,
            item,
            generation,
            &mut rand::rng(),
        )
        .map_err(|e| CoreError::Document(format!("cannot renew the item's key: {e}")))?;
        Ok((to_secret(&key), renewal))
    }

    fn open_rekey(
        &self,
        item: &str,
        author: &str,
        generation: u32,
        renewal: &[u8],
    ) -> Option<ItemSecret> {
        let author = author.parse::<MemberId>().ok()?;
        let key = kith_crypto::open_rekey(
            &self.identity,
            &author,
            &self.circle,
            item,
            generation,
            renewal,
        )
        .ok()?;
        Some(to_secret(&key))
    }

    fn open_part(
        &self,
        key: &ItemSecret,
        item: &str,
        part: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        kith_crypto::open_part(&to_item_key(key), &self.circle, item, part, sealed).ok()
    }
}
