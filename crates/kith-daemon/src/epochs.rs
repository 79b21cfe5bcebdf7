//! The circle key's epochs as this member holds them: opening keys wrapped for it,
//! wrapping keys for members who lack them, and rotating. No I/O: the caller stores the
//! keys and seals the changes this returns into envelopes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kith_core::{Circle, CoreError, KeyPlan, KeyShare, NewEpoch, Payload, Rotation, WRAPPED_LEN};
use kith_crypto::{
    CircleId, DeviceIdentity, EpochKey, MemberId, WrappedKey, unwrap_epoch_key, wrap_epoch_key,
};
use rand::CryptoRng;

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

/// A payload about keys (a rotation's change, or a key share), and the epoch to seal its
/// envelope with.
#[derive(Debug)]
pub struct KeyChange {
    pub payload: Payload,
    pub seal_with: u32,
    pub what: KeyChangeKind,
}

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
        let listed: BTreeMap<u32, [u8; 32]> = circle
            .epochs()
            .into_iter()
            .map(|e| (e.id, e.commitment))
            .collect();
        self.commitments
            .iter()
            .filter(|(epoch, commitment)| **epoch == 0 || listed.get(epoch) == Some(*commitment))
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

    /// Everything this member should do about keys now: open wraps addressed to it, wrap
    /// keys for members who lack them, and rotate when it holds no clean key or the
    /// newest epoch is older than `period_ms` (when `scheduled` allows). The changes are
    /// already applied to `circle`.
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
        let held = self.usable(circle);
        for (epoch, missing) in &plan.to_share {
            let Some(key) = self.keys.get(epoch) else {
                continue;
            };
            let missing: Vec<String> = missing
                .iter()
                .filter(|m| !self.shared.contains(&(*epoch, (*m).clone())))
                .take(kith_core::MAX_SHARED_WRAPS)
                .cloned()
                .collect();
            if missing.is_empty() {
                continue;
            }
            let Some(seal_with) = plan.share_epoch(&held, &missing) else {
                // Nothing the members lacking it could open; they will get a rotation.
                continue;
            };
            let wraps = self.wraps_for(identity, *epoch, key, &missing, rng)?;
            let mut share = KeyShare {
                epoch: *epoch,
                commitment: key.commitment(&self.circle, *epoch),
                wraps: Vec::with_capacity(wraps.len()),
            };
            for (recipient, wrapped) in wraps {
                let (Ok(member), Ok(wrapped)) = (
                    recipient.parse::<MemberId>(),
                    <[u8; WRAPPED_LEN]>::try_from(wrapped.as_slice()),
                ) else {
                    continue;
                };
                share.wraps.push((member.0, wrapped));
                self.shared.insert((*epoch, recipient));
            }
            out.changes.push(KeyChange {
                payload: Payload::Keys(share),
                seal_with,
                what: KeyChangeKind::Share,
            });
        }
        let rotate = match plan.rotate {
            Some(Rotation::Scheduled) if !scheduled => None,
            other => other,
        };
        if let Some(why) = rotate {
            let seal_with = plan
                .common_epoch(&held, &plan.recipients)
                .or(plan.write_epoch)
                .or_else(|| plan.order.iter().rev().copied().find(|e| held.contains(e)));
            if let Some(seal_with) = seal_with {
                let (key, epoch) = self.make_epoch(identity, &plan, &plan.recipients, rng)?;
                let change = circle.rotate(&epoch, now)?;
                self.insert(epoch.id, key);
                out.learned.push(epoch.id);
                out.changes.push(KeyChange {
                    payload: Payload::Change(change),
                    seal_with,
                    what: KeyChangeKind::Rotation(why),
                });
            }
        }
        Ok(out)
    }
}
