//! Private items: content only a chosen audience (plus the author) can read.
//!
//! Every member stores a private item, but only its readers can open it, and the others do
//! not even learn who the readers are: a key slot names no one, so a reader tries each slot
//! with its own key. Only the number of slots (the audience size) shows.
//!
//! ```text
//! item key     32 random bytes per item (a new audience means a new item and key)
//!
//! key slot     one per reader, in random order; the wrap of wrap.rs under its own domain:
//! e            fresh X25519 key per slot
//! dh_es        X25519(e, reader)
//! dh_ss        X25519(author, reader)
//! ikm          dh_es || dh_ss || e_pub || reader_x || author_x
//! context      "kith/item-key-wrap/v1" || version || circle || len(item) u64 BE || item
//!              || author member id || reader member id
//! key || nonce HKDF-SHA256(salt = "kith/item-key-wrap/v1", ikm, info = context), 32 + 24
//! slot         version (1) || e_pub (32) || XChaCha20-Poly1305(aad = context || e_pub,
//!              item key) (48)
//!
//! body key || commitment
//!              HKDF-SHA256(salt = "kith/item-body/v1", ikm = item key,
//!              info = "kith/item-body/v1" || version), 32 + 32
//! body         version (1) || commitment (32) || nonce (24) || XChaCha20-Poly1305(body key,
//!              nonce, aad = "kith/item-body/v1" || version || circle || len(item) || item
//!              || author || SHA-256(slots), content)
//!
//! part key     HKDF-SHA256(salt = "kith/item-part/v1", ikm = item key,
//!              info = "kith/item-part/v1" || version), 32
//! part         version (1) || nonce (24) || XChaCha20-Poly1305(part key, nonce,
//!              aad = "kith/item-part/v1" || version || circle || len(item) || item
//!              || len(part) || part, content)
//! ```
//!
//! Why the extras over a plain wrap-and-seal:
//! - The body commits to the item key: XChaCha20-Poly1305 alone does not, so an author who
//!   gave two readers different keys could craft one body that opens to different content
//!   for each. With the commitment all readers who open the body hold the same key, which
//!   also makes parts under that key read the same for everyone.
//! - The body's associated data hashes the slots, so no one (a reader included) can drop,
//!   add or swap a slot without breaking the item for every reader.
//! - The item key is never used directly: body and parts get their own subkeys.

use std::collections::BTreeSet;

use rand::CryptoRng;
use rand::seq::SliceRandom;
use subtle::ConstantTimeEq;
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use crate::identity::x25519_public;
use crate::symmetric::{
    TAG_LEN, open_random_nonce, open_with_nonce, seal_random_nonce, seal_with_nonce,
};
use crate::{CircleId, CryptoError, DeviceIdentity, MemberId, Secret, sha256};

/// The only layout so far; a new layout gets a new number.
const VERSION: u8 = 1;
/// Key slots: HKDF salt and first part of the context, apart from epoch-key wraps.
const SLOT_DOMAIN: &[u8] = b"kith/item-key-wrap/v1";
/// The item's own content.
const BODY_DOMAIN: &[u8] = b"kith/item-body/v1";
/// Replies, claims and other parts sealed under an item's key.
const PART_DOMAIN: &[u8] = b"kith/item-part/v1";
/// Renewed item keys (after a reader's removal).
const REKEY_DOMAIN: &[u8] = b"kith/item-rekey/v1";
/// The layout of a part sealed under a renewed key: it names its key generation.
const PART_VERSION_GENERATION: u8 = 2;
/// Ciphertext of a 32-byte item key with its Poly1305 tag.
const SLOT_CIPHERTEXT_LEN: usize = 32 + TAG_LEN;
/// XChaCha20 nonce length.
const NONCE_LEN: usize = 24;
/// Length of the key commitment at the head of a body.
const COMMITMENT_LEN: usize = 32;
/// Shortest possible body: version, commitment, nonce, tag of empty content.
const MIN_BODY_LEN: usize = 1 + COMMITMENT_LEN + NONCE_LEN + TAG_LEN;

/// Max readers per item (author included): bounds the trial decryptions a reader makes.
pub const MAX_READERS: usize = 64;
/// Encoded size of one key slot: version, ephemeral X25519 public key, wrapped item key.
pub const KEY_SLOT_LEN: usize = 1 + 32 + SLOT_CIPHERTEXT_LEN;

/// The random per-item content key. Zeroized on drop; `Debug` prints no key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemKey(pub Secret<32>);

impl ItemKey {
    /// Fresh random item key; each private item gets its own.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> ItemKey {
        ItemKey(Secret::random(rng))
    }
}

/// Seals `plaintext`, the content of item `item` in `circle`, for `readers` (the author is
/// always added; duplicates are removed). Returns the new item key (to seal parts with),
/// the key slots (concatenated, one per reader, in random order) and the sealed body.
///
/// Refuses more than [`MAX_READERS`] readers and any reader id that is not a valid
/// ed25519 public key.
pub fn seal_item<R: CryptoRng + ?Sized>(
    author: &DeviceIdentity,
    readers: &[MemberId],
    circle: &CircleId,
    item: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(ItemKey, Vec<u8>, Vec<u8>), CryptoError> {
    let author_id = author.member_id();
    let key = ItemKey::generate(rng);
    let slots = wrap_slots(author, readers, circle, item, &key, rng)?;
    let (body_key, commitment) = body_keys(&key);
    let mut body = Vec::with_capacity(MIN_BODY_LEN + plaintext.len());
    body.push(VERSION);
    body.extend_from_slice(&commitment);
    body.extend_from_slice(&seal_random_nonce(
        &body_key,
        &body_aad(circle, item, &author_id, &slots),
        plaintext,
        rng,
    ));
    Ok((key, slots, body))
}

/// Opens item `item` of `circle`, written by `author`, as `reader`: tries each slot once,
/// then opens the body. Not being a reader, the wrong author, circle or item, any altered
/// byte, a bad length or too many slots are all errors, never a panic.
pub fn open_item(
    reader: &DeviceIdentity,
    author: &MemberId,
    circle: &CircleId,
    item: &str,
    slots: &[u8],
    body: &[u8],
) -> Result<(ItemKey, Zeroizing<Vec<u8>>), CryptoError> {
    check_slots(slots)?;
    let (commitment, sealed) = split_body(body)?;
    let key = open_slots(reader, author, circle, item, slots)?;
    let (body_key, expected) = body_keys(&key);
    if !bool::from(expected.ct_eq(commitment)) {
        return Err(CryptoError::DecryptFailed);
    }
    let plaintext = open_random_nonce(&body_key, &body_aad(circle, item, author, slots), sealed)?;
    Ok((key, plaintext))
}

/// Seals a part of a private item (a reply, a claim's message) for everyone holding its
/// key. `part` names the place (e.g. `reply:<reply id>`) and is bound into the associated
/// data, so a sealed part opens nowhere else.
pub fn seal_part<R: CryptoRng + ?Sized>(
    key: &ItemKey,
    circle: &CircleId,
    item: &str,
    part: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let sealed = seal_random_nonce(
        &part_key(key),
        &part_aad(circle, item, part),
        plaintext,
        rng,
    );
    let mut out = Vec::with_capacity(1 + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal_part`] sealed under `key` for the same circle, item and part name.
pub fn open_part(
    key: &ItemKey,
    circle: &CircleId,
    item: &str,
    part: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let malformed = |reason| CryptoError::Malformed {
        what: "sealed part",
        reason,
    };
    let (version, rest) = sealed.split_first().ok_or(malformed("empty"))?;
    match *version {
        VERSION => open_random_nonce(&part_key(key), &part_aad(circle, item, part), rest),
        PART_VERSION_GENERATION => {
            let (generation, rest) = rest
                .split_first_chunk::<4>()
                .ok_or(malformed("too short"))?;
            let generation = u32::from_be_bytes(*generation);
            open_random_nonce(
                &part_key(key),
                &part_aad_at(circle, item, part, generation),
                rest,
            )
        }
        _ => Err(malformed("unknown version")),
    }
}

/// Renews private item `item`'s key for `readers` (the author is always added), as key
/// generation `generation` (1 and up; the key made with the item is generation 0). Used
/// after a reader is removed from the circle: parts written afterwards are sealed under
/// the new key, which the removed reader never gets. Returns the key and the renewal:
///
/// ```text
/// renewal      version (1) || commitment (32) || key slots (as for the item, with the
///              label "<item>#<generation>" in place of the item id)
/// commitment   HKDF-SHA256(salt = "kith/item-rekey/v1", ikm = new key,
///              info = "kith/item-rekey/v1" || version || circle || len(label) || label), 32
/// ```
pub fn rekey_item<R: CryptoRng + ?Sized>(
    author: &DeviceIdentity,
    readers: &[MemberId],
    circle: &CircleId,
    item: &str,
    generation: u32,
    rng: &mut R,
) -> Result<(ItemKey, Vec<u8>), CryptoError> {
    if generation == 0 {
        return Err(CryptoError::Malformed {
            what: "key generation",
            reason: "generation 0 is the item's own key",
        });
    }
    let label = generation_label(item, generation);
    let key = ItemKey::generate(rng);
    let slots = wrap_slots(author, readers, circle, &label, &key, rng)?;
    let mut out = Vec::with_capacity(1 + COMMITMENT_LEN + slots.len());
    out.push(VERSION);
    out.extend_from_slice(&rekey_commitment(&key, circle, &label));
    out.extend_from_slice(&slots);
    Ok((key, out))
}

/// Opens a renewal [`rekey_item`] made, as `reader`: the new key if this reader is among
/// its readers and it matches its commitment; an error otherwise, never a panic.
pub fn open_rekey(
    reader: &DeviceIdentity,
    author: &MemberId,
    circle: &CircleId,
    item: &str,
    generation: u32,
    renewal: &[u8],
) -> Result<ItemKey, CryptoError> {
    let malformed = |reason| CryptoError::Malformed {
        what: "key renewal",
        reason,
    };
    let (version, rest) = renewal.split_first().ok_or(malformed("empty"))?;
    if *version != VERSION {
        return Err(malformed("unknown version"));
    }
    let (commitment, slots) = rest
        .split_first_chunk::<COMMITMENT_LEN>()
        .ok_or(malformed("too short"))?;
    check_slots(slots)?;
    let label = generation_label(item, generation);
    let key = open_slots(reader, author, circle, &label, slots)?;
    if !bool::from(rekey_commitment(&key, circle, &label).ct_eq(commitment)) {
        return Err(CryptoError::DecryptFailed);
    }
    Ok(key)
}

/// [`seal_part`] under key generation `generation`: generation 0 (the item's own key)
/// writes the first layout; later ones write `version (2) || generation (u32 BE) || nonce
/// || ciphertext`, with the generation in the associated data, so that readers know which
/// key to use and a part cannot be moved between generations.
pub fn seal_part_at<R: CryptoRng + ?Sized>(
    key: &ItemKey,
    generation: u32,
    circle: &CircleId,
    item: &str,
    part: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    if generation == 0 {
        return seal_part(key, circle, item, part, plaintext, rng);
    }
    let sealed = seal_random_nonce(
        &part_key(key),
        &part_aad_at(circle, item, part, generation),
        plaintext,
        rng,
    );
    let mut out = Vec::with_capacity(1 + 4 + sealed.len());
    out.push(PART_VERSION_GENERATION);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&sealed);
    out
}

/// Which key generation a sealed part needs (`None`: not a sealed part).
pub fn part_generation(sealed: &[u8]) -> Option<u32> {
    match sealed.split_first()? {
        (&VERSION, _) => Some(0),
        (&PART_VERSION_GENERATION, rest) => {
            let (generation, _) = rest.split_first_chunk::<4>()?;
            Some(u32::from_be_bytes(*generation))
        }
        _ => None,
    }
}

/// One key slot for each reader and the author (duplicates once), holding `key` for
/// `label` (an item id, or a renewal's label), concatenated in random order: sorted order
/// would leak something about who the readers are.
fn wrap_slots<R: CryptoRng + ?Sized>(
    author: &DeviceIdentity,
    readers: &[MemberId],
    circle: &CircleId,
    label: &str,
    key: &ItemKey,
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let author_id = author.member_id();
    let audience: BTreeSet<MemberId> = readers
        .iter()
        .copied()
        .chain(std::iter::once(author_id))
        .collect();
    if audience.len() > MAX_READERS {
        return Err(CryptoError::Malformed {
            what: "private item readers",
            reason: "more than MAX_READERS readers",
        });
    }
    let author_secret = author.x25519_secret();
    let author_x = PublicKey::from(&author_secret).to_bytes();
    let mut slots = Vec::with_capacity(audience.len());
    for reader in &audience {
        slots.push(wrap_slot(
            &author_secret,
            &author_x,
            &author_id,
            reader,
            circle,
            label,
            key,
            rng,
        )?);
    }
    slots.shuffle(rng);
    Ok(slots.concat())
}

/// Tries each slot (already shape-checked) once as `reader`: the key if one was made for
/// it by `author` under `label`.
fn open_slots(
    reader: &DeviceIdentity,
    author: &MemberId,
    circle: &CircleId,
    label: &str,
    slots: &[u8],
) -> Result<ItemKey, CryptoError> {
    let author_x = x25519_public(author)?;
    let reader_secret = reader.x25519_secret();
    let reader_x = PublicKey::from(&reader_secret).to_bytes();
    let dh_ss = reader_secret.diffie_hellman(&author_x);
    let context = slot_context(circle, label, author, &reader.member_id());
    // A slot for someone else fails to open; so does a damaged one. Either way, try the next.
    slots
        .chunks_exact(KEY_SLOT_LEN)
        .find_map(|slot| {
            open_slot(
                &reader_secret,
                &reader_x,
                &author_x.to_bytes(),
                &dh_ss,
                &context,
                slot,
            )
        })
        .ok_or(CryptoError::DecryptFailed)
}

fn generation_label(item: &str, generation: u32) -> String {
    // '#' is not in the id alphabet, so no item id reads as another item's label.
    format!("{item}#{generation}")
}

fn rekey_commitment(key: &ItemKey, circle: &CircleId, label: &str) -> [u8; COMMITMENT_LEN] {
    let mut info = Vec::with_capacity(REKEY_DOMAIN.len() + 1 + 16 + 8 + label.len());
    info.extend_from_slice(REKEY_DOMAIN);
    info.push(VERSION);
    info.extend_from_slice(&circle.0);
    push_prefixed(&mut info, label.as_bytes());
    *expand::<COMMITMENT_LEN>(REKEY_DOMAIN, key.0.expose_secret(), &info)
}

/// Wraps `key` for one reader: a fresh ephemeral key, so slots are unlinkable.
#[allow(
    clippy::too_many_arguments,
    reason = "private helper; the author's keys are computed once per item"
)]
fn wrap_slot<R: CryptoRng + ?Sized>(
    author_secret: &StaticSecret,
    author_x: &[u8; 32],
    author_id: &MemberId,
    reader: &MemberId,
    circle: &CircleId,
    item: &str,
    key: &ItemKey,
    rng: &mut R,
) -> Result<[u8; KEY_SLOT_LEN], CryptoError> {
    let reader_x = x25519_public(reader)?;
    let ephemeral_secret = EphemeralSecret::random_from_rng(rng);
    let ephemeral = PublicKey::from(&ephemeral_secret).to_bytes();
    let dh_es = ephemeral_secret.diffie_hellman(&reader_x);
    let dh_ss = author_secret.diffie_hellman(&reader_x);
    let context = slot_context(circle, item, author_id, reader);
    let (wrap_key, nonce) = derive_slot_key(
        &dh_es,
        &dh_ss,
        &ephemeral,
        &reader_x.to_bytes(),
        author_x,
        &context,
    )
    .ok_or(CryptoError::Malformed {
        what: "x25519 key",
        reason: "low-order point (all-zero shared secret)",
    })?;
    let ciphertext = seal_with_nonce(
        &wrap_key,
        &nonce,
        &[context.as_slice(), &ephemeral].concat(),
        key.0.expose_secret(),
    );
    [[VERSION].as_slice(), &ephemeral, &ciphertext]
        .concat()
        .try_into()
        .map_err(|_| CryptoError::Malformed {
            what: "key slot",
            reason: "unexpected ciphertext length",
        })
}

/// One trial: the item key if `slot` was made for this reader by this author, else `None`.
fn open_slot(
    reader_secret: &StaticSecret,
    reader_x: &[u8; 32],
    author_x: &[u8; 32],
    dh_ss: &SharedSecret,
    context: &[u8],
    slot: &[u8],
) -> Option<ItemKey> {
    let (_version, rest) = slot.split_first()?;
    let (ephemeral, ciphertext) = rest.split_first_chunk::<32>()?;
    let dh_es = reader_secret.diffie_hellman(&PublicKey::from(*ephemeral));
    let (wrap_key, nonce) = derive_slot_key(&dh_es, dh_ss, ephemeral, reader_x, author_x, context)?;
    let plaintext = open_with_nonce(
        &wrap_key,
        &nonce,
        &[context, ephemeral.as_slice()].concat(),
        ciphertext,
    )
    .ok()?;
    let bytes: &[u8; 32] = plaintext.as_slice().try_into().ok()?;
    Some(ItemKey(Secret::from_bytes(*bytes)))
}

/// Shape checks before any trial: a whole number of slots, at least one, at most
/// [`MAX_READERS`], each of the known version.
fn check_slots(slots: &[u8]) -> Result<(), CryptoError> {
    let malformed = |reason| CryptoError::Malformed {
        what: "key slots",
        reason,
    };
    if slots.is_empty() {
        return Err(malformed("no slots"));
    }
    if !slots.len().is_multiple_of(KEY_SLOT_LEN) {
        return Err(malformed("not a whole number of slots"));
    }
    if slots.len() / KEY_SLOT_LEN > MAX_READERS {
        return Err(malformed("more than MAX_READERS slots"));
    }
    if slots
        .chunks_exact(KEY_SLOT_LEN)
        .any(|slot| slot.first() != Some(&VERSION))
    {
        return Err(malformed("unknown version"));
    }
    Ok(())
}

/// Splits a body into its key commitment and the nonce-prefixed ciphertext.
fn split_body(body: &[u8]) -> Result<(&[u8; COMMITMENT_LEN], &[u8]), CryptoError> {
    let malformed = |reason| CryptoError::Malformed {
        what: "private item body",
        reason,
    };
    if body.len() < MIN_BODY_LEN {
        return Err(malformed("too short"));
    }
    let (version, rest) = body.split_first().ok_or(malformed("too short"))?;
    if *version != VERSION {
        return Err(malformed("unknown version"));
    }
    rest.split_first_chunk::<COMMITMENT_LEN>()
        .ok_or(malformed("too short"))
}

/// Who and where: the slot HKDF info and, with the ephemeral key, the slot's AEAD data.
fn slot_context(circle: &CircleId, item: &str, author: &MemberId, reader: &MemberId) -> Vec<u8> {
    let mut out = Vec::with_capacity(SLOT_DOMAIN.len() + 1 + 16 + 8 + item.len() + 64);
    out.extend_from_slice(SLOT_DOMAIN);
    out.push(VERSION);
    out.extend_from_slice(&circle.0);
    push_prefixed(&mut out, item.as_bytes());
    out.extend_from_slice(&author.0);
    out.extend_from_slice(&reader.0);
    out
}

/// The body's associated data; the slots' hash ties the audience to the content.
fn body_aad(circle: &CircleId, item: &str, author: &MemberId, slots: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY_DOMAIN.len() + 1 + 16 + 8 + item.len() + 64);
    out.extend_from_slice(BODY_DOMAIN);
    out.push(VERSION);
    out.extend_from_slice(&circle.0);
    push_prefixed(&mut out, item.as_bytes());
    out.extend_from_slice(&author.0);
    out.extend_from_slice(&sha256(slots));
    out
}

/// A part's associated data: both names length-prefixed, so no two (item, part) pairs
/// give the same bytes.
fn part_aad(circle: &CircleId, item: &str, part: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(PART_DOMAIN.len() + 1 + 16 + 16 + item.len() + part.len());
    out.extend_from_slice(PART_DOMAIN);
    out.push(VERSION);
    out.extend_from_slice(&circle.0);
    push_prefixed(&mut out, item.as_bytes());
    push_prefixed(&mut out, part.as_bytes());
    out
}

/// [`part_aad`] of the second layout: its version, then the key generation at the end.
fn part_aad_at(circle: &CircleId, item: &str, part: &str, generation: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(PART_DOMAIN.len() + 1 + 16 + 16 + item.len() + part.len() + 4);
    out.extend_from_slice(PART_DOMAIN);
    out.push(PART_VERSION_GENERATION);
    out.extend_from_slice(&circle.0);
    push_prefixed(&mut out, item.as_bytes());
    push_prefixed(&mut out, part.as_bytes());
    out.extend_from_slice(&generation.to_be_bytes());
    out
}

fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // usize is at most 64 bits on every Rust target, so the cast is lossless.
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// HKDF-SHA256 of both shared secrets and the three public keys into a slot's wrapping key
/// and nonce; `None` for an all-zero shared secret, which a low-order public key forces.
fn derive_slot_key(
    dh_es: &SharedSecret,
    dh_ss: &SharedSecret,
    ephemeral: &[u8; 32],
    reader_x: &[u8; 32],
    author_x: &[u8; 32],
    context: &[u8],
) -> Option<(Secret<32>, [u8; 24])> {
    if !dh_es.was_contributory() || !dh_ss.was_contributory() {
        return None;
    }
    let mut ikm = Zeroizing::new([0u8; 32 * 5]);
    for (chunk, part) in ikm.chunks_exact_mut(32).zip([
        dh_es.as_bytes(),
        dh_ss.as_bytes(),
        ephemeral,
        reader_x,
        author_x,
    ]) {
        chunk.copy_from_slice(part);
    }
    let okm = expand::<{ 32 + 24 }>(SLOT_DOMAIN, &*ikm, context);
    let (key_bytes, nonce_bytes) = okm.split_at(32);
    let mut key = Secret::from_bytes([0u8; 32]);
    key.0.copy_from_slice(key_bytes);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(nonce_bytes);
    Some((key, nonce))
}

/// The body's encryption key and the public commitment to the item key.
fn body_keys(key: &ItemKey) -> (Secret<32>, [u8; COMMITMENT_LEN]) {
    let okm = expand::<{ 32 + COMMITMENT_LEN }>(
        BODY_DOMAIN,
        key.0.expose_secret(),
        &[BODY_DOMAIN, &[VERSION]].concat(),
    );
    let (key_bytes, commitment_bytes) = okm.split_at(32);
    let mut body_key = Secret::from_bytes([0u8; 32]);
    body_key.0.copy_from_slice(key_bytes);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(commitment_bytes);
    (body_key, commitment)
}

/// The key for parts, separate from the body's so the two can never be confused.
fn part_key(key: &ItemKey) -> Secret<32> {
    let okm = expand::<32>(
        PART_DOMAIN,
        key.0.expose_secret(),
        &[PART_DOMAIN, &[VERSION]].concat(),
    );
    Secret::from_bytes(*okm)
}

/// HKDF-SHA256 into `N` bytes that are zeroized on drop.
fn expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm);
    let mut okm = Zeroizing::new([0u8; N]);
    #[allow(
        clippy::expect_used,
        reason = "HKDF-SHA256 fails only for outputs over 8160 bytes; these are at most 64"
    )]
    hkdf.expand(info, &mut *okm)
        .expect("at most 64 bytes is a valid HKDF-SHA256 output length");
    okm
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const ITEM: &str = "abcdefgh23";
    const CONTENT: &[u8] = b"I need a lift to the clinic on Tuesday";

    struct Fixture {
        alice: DeviceIdentity,
        bob: DeviceIdentity,
        carol: DeviceIdentity,
        dave: DeviceIdentity,
        circle: CircleId,
        rng: StdRng,
    }

    fn fixture() -> Fixture {
        let mut rng = StdRng::seed_from_u64(11);
        Fixture {
            alice: DeviceIdentity::generate(&mut rng),
            bob: DeviceIdentity::generate(&mut rng),
            carol: DeviceIdentity::generate(&mut rng),
            dave: DeviceIdentity::generate(&mut rng),
            circle: CircleId::random(&mut rng),
            rng,
        }
    }

    /// Alice's item for Bob and Carol.
    fn sealed(f: &mut Fixture) -> (ItemKey, Vec<u8>, Vec<u8>) {
        let readers = [f.bob.member_id(), f.carol.member_id()];
        seal_item(&f.alice, &readers, &f.circle, ITEM, CONTENT, &mut f.rng).unwrap()
    }

    #[test]
    fn round_trip_for_author_and_each_reader() {
        let mut f = fixture();
        let (key, slots, body) = sealed(&mut f);
        assert_eq!(slots.len(), 3 * KEY_SLOT_LEN);
        assert_eq!(body.len(), MIN_BODY_LEN + CONTENT.len());
        let alice = f.alice.member_id();
        for reader in [&f.alice, &f.bob, &f.carol] {
            let (opened_key, content) =
                open_item(reader, &alice, &f.circle, ITEM, &slots, &body).unwrap();
            assert_eq!(opened_key, key);
            assert_eq!(&content[..], CONTENT);
        }
        // Empty content and an author-only audience work too.
        let (_, own_slots, own_body) =
            seal_item(&f.alice, &[], &f.circle, ITEM, b"", &mut f.rng).unwrap();
        assert_eq!(own_slots.len(), KEY_SLOT_LEN);
        let (_, content) =
            open_item(&f.alice, &alice, &f.circle, ITEM, &own_slots, &own_body).unwrap();
        assert!(content.is_empty());
        // A fresh key each time.
        let (again, _, _) = sealed(&mut f);
        assert_ne!(again, key);
    }

    /// After Carol's removal Alice renews the key for Bob alone: Bob opens it, Carol (who
    /// kept the first key) does not, and parts under it open only with it.
    #[test]
    fn a_renewed_key_leaves_the_removed_reader_out() {
        let mut f = fixture();
        let (first, _, _) = sealed(&mut f);
        let alice = f.alice.member_id();
        let (renewed, renewal) = rekey_item(
            &f.alice,
            &[f.bob.member_id()],
            &f.circle,
            ITEM,
            1,
            &mut f.rng,
        )
        .unwrap();
        assert_ne!(renewed, first);
        assert_eq!(renewal.len(), 1 + COMMITMENT_LEN + 2 * KEY_SLOT_LEN);
        for reader in [&f.alice, &f.bob] {
            let key = open_rekey(reader, &alice, &f.circle, ITEM, 1, &renewal).unwrap();
            assert_eq!(key, renewed);
        }
        for outsider in [&f.carol, &f.dave] {
            assert_eq!(
                open_rekey(outsider, &alice, &f.circle, ITEM, 1, &renewal),
                Err(CryptoError::DecryptFailed)
            );
        }
        // Bound to its generation, item, circle and author.
        let bob = &f.bob;
        assert!(open_rekey(bob, &alice, &f.circle, ITEM, 2, &renewal).is_err());
        assert!(open_rekey(bob, &alice, &f.circle, "abcdefgh24", 1, &renewal).is_err());
        assert!(open_rekey(bob, &alice, &CircleId([9; 16]), ITEM, 1, &renewal).is_err());
        assert!(open_rekey(bob, &f.carol.member_id(), &f.circle, ITEM, 1, &renewal).is_err());
        assert!(rekey_item(&f.alice, &[], &f.circle, ITEM, 0, &mut f.rng).is_err());
        // Every flipped bit and truncation is refused, never a panic.
        for i in 0..renewal.len() {
            let mut bad = renewal.clone();
            bad[i] ^= 0x20;
            // Never a wrong key: a damaged header fails; damage in another reader's slot
            // leaves Bob's own slot, and the same key.
            if let Ok(key) = open_rekey(bob, &alice, &f.circle, ITEM, 1, &bad) {
                assert!(i > COMMITMENT_LEN && key == renewed, "byte {i}");
            }
            // Cut at a slot boundary, the slots left still open to the same key (the
            // renewal is written once, by the author, inside a signed change).
            if let Ok(key) = open_rekey(bob, &alice, &f.circle, ITEM, 1, &renewal[..i]) {
                assert_eq!(key, renewed);
            }
        }

        // Parts: generation 0 keeps the first layout; later ones name their generation.
        let old = seal_part_at(&first, 0, &f.circle, ITEM, "reply:r1", b"hi", &mut f.rng);
        assert_eq!(old.first(), Some(&VERSION));
        assert_eq!(part_generation(&old), Some(0));
        let new = seal_part_at(&renewed, 1, &f.circle, ITEM, "reply:r2", b"ok", &mut f.rng);
        assert_eq!(part_generation(&new), Some(1));
        assert_eq!(
            &open_part(&renewed, &f.circle, ITEM, "reply:r2", &new).unwrap()[..],
            b"ok"
        );
        // The first key, which Carol kept, opens none of it.
        assert!(open_part(&first, &f.circle, ITEM, "reply:r2", &new).is_err());
        // A part moved to another generation, place or item does not open.
        let mut moved = new.clone();
        moved[1..5].copy_from_slice(&2u32.to_be_bytes());
        assert!(open_part(&renewed, &f.circle, ITEM, "reply:r2", &moved).is_err());
        assert!(open_part(&renewed, &f.circle, ITEM, "reply:r3", &new).is_err());
        assert_eq!(part_generation(&[]), None);
        assert_eq!(part_generation(&[2, 0, 0]), None);
        assert_eq!(part_generation(&[7]), None);
    }

    #[test]
    fn non_reader_cannot_open() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        assert_eq!(
            open_item(
                &f.dave,
                &f.alice.member_id(),
                &f.circle,
                ITEM,
                &slots,
                &body
            ),
            Err(CryptoError::DecryptFailed)
        );
    }

    #[test]
    fn wrong_author_circle_or_item_fails() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let alice = f.alice.member_id();
        let failed = Err(CryptoError::DecryptFailed);
        assert_eq!(
            open_item(&f.bob, &f.carol.member_id(), &f.circle, ITEM, &slots, &body),
            failed
        );
        assert_eq!(
            open_item(&f.bob, &f.bob.member_id(), &f.circle, ITEM, &slots, &body),
            failed
        );
        assert_eq!(
            open_item(&f.bob, &alice, &CircleId([9; 16]), ITEM, &slots, &body),
            failed
        );
        assert_eq!(
            open_item(&f.bob, &alice, &f.circle, "abcdefgh24", &slots, &body),
            failed
        );
        assert_eq!(
            open_item(&f.bob, &alice, &f.circle, "", &slots, &body),
            failed
        );
        // An invalid author id is refused before any trial.
        assert!(
            open_item(
                &f.bob,
                &MemberId([0xff; 32]),
                &f.circle,
                ITEM,
                &slots,
                &body
            )
            .is_err()
        );
    }

    /// Slots and body belong together: neither half of one item opens with the other's.
    #[test]
    fn slots_and_body_of_different_items_do_not_mix() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let (_, other_slots, other_body) = sealed(&mut f);
        let alice = f.alice.member_id();
        assert!(open_item(&f.bob, &alice, &f.circle, ITEM, &slots, &other_body).is_err());
        assert!(open_item(&f.bob, &alice, &f.circle, ITEM, &other_slots, &body).is_err());
        // Nor can a reader drop someone else's slot and keep the item readable.
        let dropped = [&slots[..KEY_SLOT_LEN], &slots[2 * KEY_SLOT_LEN..]].concat();
        let reordered = [&slots[KEY_SLOT_LEN..], &slots[..KEY_SLOT_LEN]].concat();
        for reader in [&f.alice, &f.bob, &f.carol] {
            assert!(open_item(reader, &alice, &f.circle, ITEM, &dropped, &body).is_err());
            assert!(open_item(reader, &alice, &f.circle, ITEM, &reordered, &body).is_err());
        }
    }

    #[test]
    fn every_flipped_bit_fails() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let alice = f.alice.member_id();
        for bit in 0..slots.len() * 8 {
            let mut flipped = slots.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = open_item(&f.bob, &alice, &f.circle, ITEM, &flipped, &body);
            assert!(result.is_err(), "slot bit {bit} flipped was accepted");
        }
        for bit in 0..body.len() * 8 {
            let mut flipped = body.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = open_item(&f.bob, &alice, &f.circle, ITEM, &slots, &flipped);
            assert!(result.is_err(), "body bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn truncated_or_extended_input_fails() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let alice = f.alice.member_id();
        let open =
            |slots: &[u8], body: &[u8]| open_item(&f.bob, &alice, &f.circle, ITEM, slots, body);
        for len in 0..slots.len() {
            assert!(open(&slots[..len], &body).is_err(), "slots cut to {len}");
        }
        for len in 0..body.len() {
            assert!(open(&slots, &body[..len]).is_err(), "body cut to {len}");
        }
        assert!(open(&[slots.as_slice(), &[0]].concat(), &body).is_err());
        assert!(
            open(
                &[slots.as_slice(), &[VERSION; KEY_SLOT_LEN]].concat(),
                &body
            )
            .is_err()
        );
        assert!(open(&slots, &[body.as_slice(), &[0]].concat()).is_err());
        assert!(open(&slots, &[]).is_err());
        assert!(open(&[], &body).is_err());
    }

    /// Recipients are hidden: no reader's member id or X25519 key is in the slots.
    #[test]
    fn slots_reveal_no_member_ids() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let contains = |haystack: &[u8], needle: &[u8]| {
            haystack
                .windows(needle.len())
                .any(|window| window == needle)
        };
        for member in [&f.alice, &f.bob, &f.carol] {
            let id = member.member_id();
            let x = x25519_public(&id).unwrap().to_bytes();
            for bytes in [&slots, &body] {
                assert!(!contains(bytes, &id.0), "{id} appears");
                assert!(!contains(bytes, &x), "x25519 key of {id} appears");
            }
        }
    }

    #[test]
    fn slot_order_is_random() {
        let mut f = fixture();
        let alice = f.alice.member_id();
        let secret = f.alice.x25519_secret();
        let own_x = PublicKey::from(&secret).to_bytes();
        let dh_ss = secret.diffie_hellman(&PublicKey::from(own_x));
        let context = slot_context(&f.circle, ITEM, &alice, &alice);
        // Which slot opens for the author varies between sealings of the same audience.
        let positions: BTreeSet<usize> = (0..16)
            .map(|_| {
                let (_, slots, _) = sealed(&mut f);
                slots
                    .chunks_exact(KEY_SLOT_LEN)
                    .position(|slot| {
                        open_slot(&secret, &own_x, &own_x, &dh_ss, &context, slot).is_some()
                    })
                    .unwrap()
            })
            .collect();
        assert!(positions.len() > 1, "{positions:?}");
    }

    #[test]
    fn duplicate_readers_give_one_slot() {
        let mut f = fixture();
        let (alice, bob) = (f.alice.member_id(), f.bob.member_id());
        let readers = [bob, alice, bob, bob, alice];
        let (_, slots, body) =
            seal_item(&f.alice, &readers, &f.circle, ITEM, CONTENT, &mut f.rng).unwrap();
        assert_eq!(slots.len(), 2 * KEY_SLOT_LEN);
        for reader in [&f.alice, &f.bob] {
            assert!(open_item(reader, &alice, &f.circle, ITEM, &slots, &body).is_ok());
        }
    }

    #[test]
    fn too_many_readers_refused() {
        let mut f = fixture();
        let others: Vec<MemberId> = (0..MAX_READERS)
            .map(|_| DeviceIdentity::generate(&mut f.rng).member_id())
            .collect();
        // The author plus 63 others is exactly the limit.
        let (_, slots, body) = seal_item(
            &f.alice,
            &others[..MAX_READERS - 1],
            &f.circle,
            ITEM,
            CONTENT,
            &mut f.rng,
        )
        .unwrap();
        assert_eq!(slots.len(), MAX_READERS * KEY_SLOT_LEN);
        let alice = f.alice.member_id();
        assert!(open_item(&f.alice, &alice, &f.circle, ITEM, &slots, &body).is_ok());
        // The author plus 64 others is one too many.
        let refused = seal_item(&f.alice, &others, &f.circle, ITEM, CONTENT, &mut f.rng);
        assert!(
            matches!(refused, Err(CryptoError::Malformed { .. })),
            "{refused:?}"
        );
        // Readers refuse a 65th slot before trying any.
        let extended = [slots.as_slice(), &slots[..KEY_SLOT_LEN]].concat();
        let result = open_item(&f.alice, &alice, &f.circle, ITEM, &extended, &body);
        assert_eq!(
            result,
            Err(CryptoError::Malformed {
                what: "key slots",
                reason: "more than MAX_READERS slots",
            })
        );
    }

    #[test]
    fn invalid_reader_id_refused() {
        let mut f = fixture();
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        for bad in [MemberId(identity_point), MemberId([0xff; 32])] {
            let readers = [f.bob.member_id(), bad];
            assert!(seal_item(&f.alice, &readers, &f.circle, ITEM, CONTENT, &mut f.rng).is_err());
        }
    }

    /// A slot whose ephemeral key is a low-order point is skipped, never trusted.
    #[test]
    fn low_order_ephemeral_slot_is_not_opened() {
        let mut f = fixture();
        let (_, slots, body) = sealed(&mut f);
        let alice = f.alice.member_id();
        let mut bad = slots.clone();
        for slot in bad.chunks_exact_mut(KEY_SLOT_LEN) {
            slot[1..33].copy_from_slice(&[0u8; 32]);
        }
        assert_eq!(
            open_item(&f.bob, &alice, &f.circle, ITEM, &bad, &body),
            Err(CryptoError::DecryptFailed)
        );
    }

    #[test]
    fn part_round_trip_and_binding() {
        let mut f = fixture();
        let (key, slots, body) = sealed(&mut f);
        let (bob_key, _) =
            open_item(&f.bob, &f.alice.member_id(), &f.circle, ITEM, &slots, &body).unwrap();
        let part = "reply:qrstuvwx45";
        let sealed = seal_part(&bob_key, &f.circle, ITEM, part, b"I can drive", &mut f.rng);
        assert_eq!(
            &open_part(&key, &f.circle, ITEM, part, &sealed).unwrap()[..],
            b"I can drive"
        );
        let failed = Err(CryptoError::DecryptFailed);
        assert_eq!(
            open_part(&key, &f.circle, ITEM, "reply:qrstuvwx46", &sealed),
            failed
        );
        assert_eq!(open_part(&key, &f.circle, ITEM, "claim:x", &sealed), failed);
        assert_eq!(
            open_part(&key, &f.circle, "abcdefgh24", part, &sealed),
            failed
        );
        assert_eq!(
            open_part(&key, &CircleId([9; 16]), ITEM, part, &sealed),
            failed
        );
        // The item/part boundary is length-prefixed: moving characters across it fails.
        assert_eq!(
            open_part(&key, &f.circle, "abcdefgh2", "3reply:qrstuvwx45", &sealed),
            failed
        );
        let other_key = ItemKey::generate(&mut f.rng);
        assert_eq!(
            open_part(&other_key, &f.circle, ITEM, part, &sealed),
            failed
        );
        // A body is not a part, and a part is not a body.
        assert!(open_part(&key, &f.circle, ITEM, part, &body).is_err());
        let alice = f.alice.member_id();
        assert!(open_item(&f.bob, &alice, &f.circle, ITEM, &slots, &sealed).is_err());
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open_part(&key, &f.circle, ITEM, part, &flipped).is_err(),
                "bit {bit}"
            );
        }
        for len in 0..sealed.len() {
            assert!(open_part(&key, &f.circle, ITEM, part, &sealed[..len]).is_err());
        }
        // Random nonces: the same part sealed twice differs.
        let again = seal_part(&key, &f.circle, ITEM, part, b"I can drive", &mut f.rng);
        assert_ne!(again, sealed);
    }

    #[test]
    fn item_key_debug_hides_bytes() {
        let key = ItemKey(Secret::from_bytes([0xab; 32]));
        assert_eq!(format!("{key:?}"), "ItemKey(Secret(***))");
    }

    proptest! {
        /// Arbitrary bytes as slots and body: an error, never a panic.
        #[test]
        fn open_item_never_panics(
            slots in proptest::collection::vec(any::<u8>(), 0..3 * KEY_SLOT_LEN + 4),
            body in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let f = fixture();
            let alice = f.alice.member_id();
            prop_assert!(open_item(&f.bob, &alice, &f.circle, ITEM, &slots, &body).is_err());
        }

        /// Slots of the right shape reach the trial decryptions; still only errors.
        #[test]
        fn open_item_with_shaped_slots_never_panics(
            slots in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), KEY_SLOT_LEN),
                0..MAX_READERS + 2,
            ),
            body in proptest::collection::vec(any::<u8>(), MIN_BODY_LEN..MIN_BODY_LEN + 64),
        ) {
            let f = fixture();
            let mut slots = slots.concat();
            for slot in slots.chunks_exact_mut(KEY_SLOT_LEN) {
                slot[0] = VERSION;
            }
            let mut body = body;
            body[0] = VERSION;
            let alice = f.alice.member_id();
            prop_assert!(open_item(&f.bob, &alice, &f.circle, ITEM, &slots, &body).is_err());
        }

        /// A real item with a few bytes changed or cut never opens.
        #[test]
        fn mutated_item_never_opens(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut f = fixture();
            let (_, slots, body) = sealed(&mut f);
            let (mut new_slots, mut new_body) = (slots.clone(), body.clone());
            for (at, value, in_slots) in edits {
                let bytes = if in_slots { &mut new_slots } else { &mut new_body };
                let len = bytes.len();
                bytes[at % len] = value;
            }
            new_body.truncate(cut % (body.len() + 1));
            if new_slots != slots || new_body != body {
                let alice = f.alice.member_id();
                prop_assert!(
                    open_item(&f.bob, &alice, &f.circle, ITEM, &new_slots, &new_body).is_err()
                );
            }
        }
    }
}
