//! The circle key's epochs as this member holds them: opening keys wrapped for it,
//! sharing keys with members who lack them, and rotating. No I/O: the caller stores the
//! keys and seals the changes this returns into envelopes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kith_core::{Circle, CoreError, KeyPlan, KeyShare, NewEpoch, Payload, Rotation, WRAPPED_LEN};
use kith_crypto::{
    CircleId, DeviceIdentity, Envelope, EpochKey, MemberId, WrappedKey, unwrap_epoch_key,
    wrap_epoch_key,
};
use rand::CryptoRng;
use zeroize::Zeroizing;

/// A week: how long an epoch lasts before a steward makes the next one.
pub const ROTATION_PERIOD_MS: i64 = 7 * 24 * 3600 * 1000;

/// The epoch keys one member holds for one circle.
#[derive(Clone, Debug)]
pub struct EpochKeys {
    circle: CircleId,
    keys: BTreeMap<u32, EpochKey>,
    /// Each key's commitment, to check against the epoch's in the document.
    commitments: BTreeMap<u32, [u8; 32]>,
    /// Keys already shared with a member in this run, so that a share goes out once.
    shared: HashSet<(u32, String)>,
}

/// A payload about keys (a rotation's change, or a key share), and how to seal it.
#[derive(Debug)]
pub struct KeyChange {
    pub payload: Payload,
    pub seal: Seal,
    pub what: KeyChangeKind,
}

/// How an envelope is sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seal {
    /// With a circle key: every member who holds the epoch reads it, now or after joining.
    Epoch(u32),
    /// For these members by name ([`Envelope::seal_direct`]): a key share, which must
    /// reach its readers whatever keys they hold, and nobody else.
    Direct(Vec<MemberId>),
}

/// What opening one envelope gave.
pub enum Opened {
    Payload(Zeroizing<Vec<u8>>),
    /// Sealed with an epoch this member does not hold (yet): it waits.
    Locked,
    /// Not for this member (a direct envelope for others), or damaged: it never opens.
    Unreadable,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the plaintext.
        f.write_str(match self {
            Opened::Payload(_) => "Payload(..)",
            Opened::Locked => "Locked",
            Opened::Unreadable => "Unreadable",
        })
    }
}

/// A direct envelope names at most this many readers besides its author.
const MAX_DIRECT_READERS: usize = kith_crypto::MAX_READERS - 1;

const _: () = assert!(kith_core::DIRECT_EPOCH == kith_crypto::DIRECT_EPOCH);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChangeKind {
    Share,
    Rotation(Rotation),
}

/// What [`EpochKeys::upkeep`] did.
#[derive(Debug, Default)]
pub struct Upkeep {
    /// Keys newly opened or made: the caller stores them (before sealing anything).
    pub learned: Vec<u32>,
    pub changes: Vec<KeyChange>,
}

impl EpochKeys {
    pub fn new(circle: CircleId, keys: impl IntoIterator<Item = (u32, EpochKey)>) -> EpochKeys {
        let mut out = EpochKeys {
            circle,
            keys: BTreeMap::new(),
            commitments: BTreeMap::new(),
            shared: HashSet::new(),
        };
        for (epoch, key) in keys {
            out.insert(epoch, key);
        }
        out
    }

    /// The epochs this member may write with: epoch 0, and those whose key matches the
    /// commitment the document holds (a key a careless or hostile member shared under an
    /// epoch's id opens nothing but is never used to seal).
    pub fn usable(&self, circle: &Circle) -> BTreeSet<u32> {
        self.commitments
            .iter()
            .filter(|(epoch, commitment)| {
                **epoch == 0 || circle.epoch_commitment(**epoch) == Some(**commitment)
            })
            .map(|(epoch, _)| *epoch)
            .collect()
    }

    /// Opens the wraps of `share` addressed to this member (sent by `author`, the
    /// envelope's signer); keys that do not match the commitment they came with are
    /// ignored. Returns the epochs learned.
    pub fn learn_shared(
        &mut self,
        identity: &DeviceIdentity,
        author: &MemberId,
        share: &KeyShare,
    ) -> Vec<u32> {
        if self.keys.contains_key(&share.epoch) {
            return Vec::new();
        }
        let me = identity.member_id().0;
        let Some((_, wrapped)) = share.wraps.iter().find(|(recipient, _)| *recipient == me) else {
            return Vec::new();
        };
        let Ok(wrapped) = WrappedKey::decode(wrapped) else {
            return Vec::new();
        };
        let Ok(key) = unwrap_epoch_key(identity, author, &self.circle, share.epoch, &wrapped)
        else {
            return Vec::new();
        };
        if key.commitment(&self.circle, share.epoch) != share.commitment {
            return Vec::new();
        }
        self.insert(share.epoch, key);
        vec![share.epoch]
    }

    /// Opens `envelope` (verified already, by kith-sync or the store) as `identity`.
    pub fn open(&self, identity: &DeviceIdentity, envelope: &Envelope) -> Opened {
        let opened = if envelope.is_direct() {
            envelope.open_direct_verified(identity)
        } else {
            let Some(key) = self.keys.get(&envelope.header.epoch) else {
                return Opened::Locked;
            };
            envelope.open_verified(key)
        };
        match opened {
            Ok(plaintext) => Opened::Payload(plaintext),
            Err(_) => Opened::Unreadable,
        }
    }

    pub fn get(&self, epoch: u32) -> Option<&EpochKey> {
        self.keys.get(&epoch)
    }

    pub fn held(&self) -> BTreeSet<u32> {
        self.keys.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key, for the store.
    pub fn records(&self) -> Vec<(u32, EpochKey)> {
        self.keys.iter().map(|(e, k)| (*e, k.clone())).collect()
    }

    pub fn insert(&mut self, epoch: u32, key: EpochKey) {
        self.commitments
            .insert(epoch, key.commitment(&self.circle, epoch));
        self.keys.insert(epoch, key);
    }

    /// Opens the wraps `plan` lists for this member; a wrap that does not open, or whose
    /// key does not match the epoch's commitment, is skipped (another wrap may do).
    pub fn learn(&mut self, identity: &DeviceIdentity, plan: &KeyPlan) -> Vec<u32> {
        let mut learned = Vec::new();
        for (epoch, sender, wrapped, commitment) in &plan.to_open {
            if self.keys.contains_key(epoch) {
                continue;
            }
            let Ok(sender) = sender.parse::<MemberId>() else {
                continue;
            };
            let Ok(wrapped) = WrappedKey::decode(wrapped) else {
                continue;
            };
            let Ok(key) = unwrap_epoch_key(identity, &sender, &self.circle, *epoch, &wrapped)
            else {
                continue;
            };
            if key.commitment(&self.circle, *epoch) != *commitment {
                tracing::warn!(epoch, "a wrapped key does not match its epoch; ignored");
                continue;
            }
            self.insert(*epoch, key);
            learned.push(*epoch);
        }
        learned
    }

    /// `epoch`'s key wrapped for each of `recipients`.
    pub fn wraps_for(
        &self,
        identity: &DeviceIdentity,
        epoch: u32,
        key: &EpochKey,
        recipients: &[String],
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
        recipients
            .iter()
            .map(|r| {
                let member = r
                    .parse::<MemberId>()
                    .map_err(|e| CoreError::Document(format!("a member id: {e}")))?;
                let wrapped = wrap_epoch_key(identity, &member, &self.circle, epoch, key, rng)
                    .map_err(|e| CoreError::Document(format!("cannot wrap a key: {e}")))?;
                Ok((r.clone(), wrapped.encode()))
            })
            .collect()
    }

    /// A fresh epoch for every current member (this one included), and its key, which
    /// the caller keeps (see [`EpochKeys::insert`]) once the change is written.
    pub fn make_epoch(
        &self,
        identity: &DeviceIdentity,
        plan: &KeyPlan,
        recipients: &[String],
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(EpochKey, NewEpoch), CoreError> {
        let mut id = 0;
        while id == 0 || plan.used_ids.contains(&id) {
            let mut bytes = [0u8; 4];
            rng.fill_bytes(&mut bytes);
            id = u32::from_be_bytes(bytes);
        }
        let key = EpochKey::generate(rng);
        let wraps = self.wraps_for(identity, id, &key, recipients, rng)?;
        let epoch = NewEpoch {
            id,
            generation: plan.next_generation,
            commitment: key.commitment(&self.circle, id),
            wraps,
        };
        Ok((key, epoch))
    }

    /// The epoch to seal an ordinary change with, learning what the document offers
    /// first. `None`: no clean key; the caller runs [`EpochKeys::upkeep`] (which rotates).
    pub fn write_epoch(
        &mut self,
        identity: &DeviceIdentity,
        circle: &Circle,
        now: i64,
    ) -> Option<u32> {
        let plan = circle.key_plan(&self.held(), now, ROTATION_PERIOD_MS);
        if self.learn(identity, &plan).is_empty() {
            return plan.write_epoch;
        }
        circle
            .key_plan(&self.held(), now, ROTATION_PERIOD_MS)
            .write_epoch
    }

    /// Key shares of `epoch` carrying `wraps` (recipient, wrapped key), each a direct
    /// envelope for the members it has wraps for.
    fn shares(
        &mut self,
        epoch: u32,
        key: &EpochKey,
        wraps: Vec<(String, Vec<u8>)>,
    ) -> Vec<KeyChange> {
        let commitment = key.commitment(&self.circle, epoch);
        let mut out = Vec::new();
        for chunk in wraps.chunks(MAX_DIRECT_READERS.min(kith_core::MAX_SHARED_WRAPS)) {
            let mut share = KeyShare {
                epoch,
                commitment,
                wraps: Vec::with_capacity(chunk.len()),
            };
            let mut readers = Vec::with_capacity(chunk.len());
            for (recipient, wrapped) in chunk {
                let (Ok(member), Ok(wrapped)) = (
                    recipient.parse::<MemberId>(),
                    <[u8; WRAPPED_LEN]>::try_from(wrapped.as_slice()),
                ) else {
                    continue;
                };
                share.wraps.push((member.0, wrapped));
                readers.push(member);
                self.shared.insert((epoch, recipient.clone()));
            }
            if readers.is_empty() {
                continue;
            }
            out.push(KeyChange {
                payload: Payload::Keys(share),
                seal: Seal::Direct(readers),
                what: KeyChangeKind::Share,
            });
        }
        out
    }

    /// Everything this member should do about keys now: open wraps addressed to it, share
    /// keys with members who lack them, and rotate when it holds no clean key or the
    /// newest epoch is older than `period_ms` (when `scheduled` allows). The changes are
    /// already applied to `circle`.
    ///
    /// Nothing here is sealed with an older epoch key, which a removed member may hold:
    /// shares go in direct envelopes for the members they carry keys for, and a rotation
    /// is sealed with its own new key, which every recipient gets in a direct share.
    pub fn upkeep(
        &mut self,
        identity: &DeviceIdentity,
        circle: &mut Circle,
        now: i64,
        period_ms: i64,
        scheduled: bool,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Upkeep, CoreError> {
        let mut out = Upkeep::default();
        let plan = circle.key_plan(&self.usable(circle), now, period_ms);
        out.learned = self.learn(identity, &plan);
        let plan = if out.learned.is_empty() {
            plan
        } else {
            circle.key_plan(&self.usable(circle), now, period_ms)
        };
        for (epoch, missing) in &plan.to_share {
            let Some(key) = self.keys.get(epoch).cloned() else {
                continue;
            };
            let missing: Vec<String> = missing
                .iter()
                .filter(|m| !self.shared.contains(&(*epoch, (*m).clone())))
                .cloned()
                .collect();
            let wraps = self.wraps_for(identity, *epoch, &key, &missing, rng)?;
            out.changes.extend(self.shares(*epoch, &key, wraps));
        }
        let rotate = match plan.rotate {
            Some(Rotation::Scheduled) if !scheduled => None,
            other => other,
        };
        if let Some(why) = rotate {
            // The rotation is sealed with its own new key, which reaches every member in
            // direct envelopes: nobody needs an older key to read it, so no older key (one
            // a removed member may hold) seals anything about it.
            let (key, epoch) = self.make_epoch(identity, &plan, &plan.recipients, rng)?;
            let change = circle.rotate(&epoch, now)?;
            self.insert(epoch.id, key.clone());
            out.learned.push(epoch.id);
            let me = identity.member_id().to_string();
            let wraps = epoch.wraps.into_iter().filter(|(r, _)| *r != me).collect();
            out.changes.extend(self.shares(epoch.id, &key, wraps));
            out.changes.push(KeyChange {
                payload: Payload::Change(change),
                seal: Seal::Epoch(epoch.id),
                what: KeyChangeKind::Rotation(why),
            });
        }
        Ok(out)
    }
}
