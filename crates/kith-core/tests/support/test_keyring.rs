//! A keyring for tests: seals and opens private items with kith-crypto as the daemon's
//! keyring does, drawing randomness from a seeded generator so that every run writes the
//! same bytes. Shared by the unit tests (`src/tests_life.rs`) and the property tests.

use std::sync::{Arc, Mutex};

use kith_core::{CoreError, ItemSecret, Keyring};
use kith_crypto::{CircleId, DeviceIdentity, ItemKey, MemberId, Secret};
use rand::SeedableRng;
use rand::rngs::StdRng;
use zeroize::Zeroizing;

/// One member's keyring.
pub struct TestKeyring {
    identity: DeviceIdentity,
    circle: CircleId,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for TestKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKeyring")
            .field("member", &self.identity.member_id())
            .finish_non_exhaustive()
    }
}

impl TestKeyring {
    pub fn shared(identity: &DeviceIdentity, seed: u64) -> Arc<dyn Keyring> {
        Arc::new(TestKeyring {
            identity: DeviceIdentity::from_secret(&identity.secret()),
            circle: CircleId([7; 16]),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }
}

fn item_key(secret: &ItemSecret) -> ItemKey {
    ItemKey(Secret::from_bytes(*secret.expose()))
}

impl Keyring for TestKeyring {
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
        let mut rng = self.rng.lock().unwrap();
        let (key, slots, body) = kith_crypto::seal_item(
            &self.identity,
            &readers,
            &self.circle,
            item,
            plaintext,
            &mut *rng,
        )
        .map_err(|e| CoreError::Document(format!("cannot seal: {e}")))?;
        Ok((ItemSecret::from_bytes(*key.0.expose_secret()), slots, body))
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
        Some((ItemSecret::from_bytes(*key.0.expose_secret()), plaintext))
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
            &item_key(key),
            generation,
            &self.circle,
            item,
            part,
            plaintext,
            &mut *self.rng.lock().unwrap(),
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
            &mut *self.rng.lock().unwrap(),
        )
        .map_err(|e| CoreError::Document(format!("cannot renew the item's key: {e}")))?;
        Ok((ItemSecret::from_bytes(*key.0.expose_secret()), renewal))
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
        Some(ItemSecret::from_bytes(*key.0.expose_secret()))
    }

    fn open_part(
        &self,
        key: &ItemSecret,
        item: &str,
        part: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        kith_crypto::open_part(&item_key(key), &self.circle, item, part, sealed).ok()
    }
}
