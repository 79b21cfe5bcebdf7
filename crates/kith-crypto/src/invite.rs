//! Invite codes, and the proof a joiner gives that it holds one.
//!
//! An invite is one line to paste or read aloud: `kith1` followed by lowercase base32 (the
//! id alphabet) of a versioned binary layout and a 4-byte checksum. The checksum catches a
//! mistyped or truncated code before anything touches the network.
//!
//! An invite names its **contacts**: members a joiner may ask to be admitted, each with the
//! addresses it listens on. The first is the inviter; the others let the invite work while
//! the inviter is offline, since any member holding the invite's record can admit.
//!
//! # Layout (version 2, what kith makes)
//!
//! ```text
//! version     u8 = 2
//! circle      [16]
//! secret      [16]     one-time invite secret
//! expires_at  varint   unix seconds, minimal LEB128
//! n_contacts  u8       1 ..= 4; the first contact is the inviter
//! n_contacts ×
//!   member    [32]     ed25519 public key (member id) of the contact's device; all distinct
//!   n_addrs   u8       0 ..= 8, and at most 16 over all contacts
//!   n_addrs × len u8 (1 ..= 128), then len bytes of printable ASCII (a multiaddr)
//! checksum    [4]      SHA-256("kith1" || everything above)[..4]
//! ```
//!
//! # Layout (version 1, still read)
//!
//! One contact, the inviter; codes made by earlier versions of kith. A version 1 code prints
//! back as version 1, so every code has exactly one spelling.
//!
//! ```text
//! version     u8 = 1
//! circle      [16]
//! inviter     [32]     ed25519 public key (member id) of the inviting device
//! secret      [16]     one-time invite secret
//! expires_at  varint   unix seconds, minimal LEB128
//! n_addrs     u8       0 ..= 8
//! n_addrs ×   len u8 (1 ..= 128), then len bytes of printable ASCII (a multiaddr)
//! checksum    [4]      SHA-256("kith1" || everything above)[..4]
//! ```
//!
//! # Joining
//!
//! The joiner never sends the secret. Members replicate only [`invite_id`] (to recognise the
//! invite) and [`invite_verifier_key`]; the joiner sends a [`JoinProof`], an HMAC under the
//! verifier key over the circle and both peer ids of the connection. The Noise handshake
//! authenticates both peer ids, so a proof seen by anyone is useless from another peer or
//! toward another admitter.

use std::fmt;

use data_encoding::BASE32_NOPAD_NOCASE;

use crate::wire::{MAX_VARINT_LEN, Reader, write_varint};
use hkdf::Hkdf;
use hkdf::hmac::{Hmac, KeyInit, Mac};
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::identity::x25519_public;
use crate::{CircleId, ID_ALPHABET, MemberId, Secret, encode_id};

/// Every invite code starts with this. `1` is not in the base32 alphabet, so the prefix
/// cannot run into the body unnoticed.
pub const INVITE_PREFIX: &str = "kith1";
/// Most contacts an invite may name: the inviter and three other members.
pub const MAX_INVITE_CONTACTS: usize = 4;
/// Most addresses an invite may carry for one contact.
pub const MAX_INVITE_ADDRESSES: usize = 8;
/// Most addresses an invite may carry over all its contacts.
pub const MAX_INVITE_TOTAL_ADDRESSES: usize = 16;
/// Longest address (bytes) an invite may carry.
pub const MAX_INVITE_ADDRESS_LEN: usize = 128;
/// The layout [`InviteCode::with_contacts`] makes.
const VERSION: u8 = 2;
/// The first layout: one contact. Still read, and made by [`InviteCode::new`].
const VERSION_1: u8 = 1;
const CHECKSUM_LEN: usize = 4;
/// Longest version 1 content: version, circle, inviter, secret, longest varint, address
/// count, addresses.
const MAX_V1_LEN: usize =
    1 + 16 + 32 + 16 + MAX_VARINT_LEN + 1 + MAX_INVITE_ADDRESSES * (1 + MAX_INVITE_ADDRESS_LEN);
/// Longest version 2 content: version, circle, secret, longest varint, contact count,
/// contacts (key and address count each), addresses.
const MAX_V2_LEN: usize = 1
    + 16
    + 16
    + MAX_VARINT_LEN
    + 1
    + MAX_INVITE_CONTACTS * (32 + 1)
    + MAX_INVITE_TOTAL_ADDRESSES * (1 + MAX_INVITE_ADDRESS_LEN);
/// Longest binary invite, checksum included.
const MAX_BINARY_LEN: usize = if MAX_V2_LEN > MAX_V1_LEN {
    MAX_V2_LEN
} else {
    MAX_V1_LEN
} + CHECKSUM_LEN;
/// Longest valid invite code in characters, whitespace not counted.
pub const MAX_INVITE_CODE_LEN: usize = INVITE_PREFIX.len() + (MAX_BINARY_LEN * 8).div_ceil(5);
/// Longest text `parse` looks at (bytes, whitespace included): room for a code wrapped over
/// many lines, and a bound on the work done for hostile input.
const MAX_INPUT_LEN: usize = 4 * MAX_INVITE_CODE_LEN;

const ID_DOMAIN: &[u8] = b"kith/invite/id/v1";
const VERIFY_INFO: &[u8] = b"kith/invite/verify";
const JOIN_DOMAIN: &[u8] = b"kith/join/v1";

/// Why a pasted invite was refused. Each message says what a person can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// The text does not start with [`INVITE_PREFIX`] (case and whitespace aside).
    #[error("not a kith invite: an invite starts with \"kith1\"")]
    WrongPrefix,
    /// A character outside the invite alphabet; `position` counts characters of the text as
    /// given, from 1, whitespace included.
    #[error(
        "character {character:?} at position {position} cannot appear in an invite \
         (only letters and the digits 2-7 can)"
    )]
    BadCharacter {
        /// 1-based position in the text as given.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The checksum does not match: almost always a typo, or a code cut short.
    #[error("the invite's checksum does not match: mistyped, or not copied in full?")]
    BadChecksum,
    /// A layout version this build does not know; a newer kith may read it.
    #[error("invite version {0} is not supported by this version of kith")]
    UnsupportedVersion(u8),
    /// The checksum matches but the content breaks the layout's rules.
    #[error("malformed invite: {0}")]
    Malformed(&'static str),
    /// Longer than any valid invite; refused before decoding.
    #[error("the text is too long to be an invite (at most {max} characters)")]
    TooLong {
        /// Longest valid invite in characters.
        max: usize,
    },
}

/// A member a joiner may ask to be admitted: its member key (its `PeerId` is
/// [`MemberId::to_peer_id`]) and the addresses (multiaddr strings, not checked here) it
/// listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteContact {
    /// The contact's member id.
    pub member: MemberId,
    /// Where it may be reached.
    pub addresses: Vec<String>,
}

/// Everything a joiner needs to reach a member who can admit it, and to prove it was
/// invited.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode {
    /// The layout it prints as: 1 for codes read in that layout or made by `new`, else 2.
    version: u8,
    circle: CircleId,
    /// 1 ..= [`MAX_INVITE_CONTACTS`], the inviter first; exactly one in version 1.
    contacts: Vec<InviteContact>,
    secret: Secret<16>,
    expires_at: u64,
}

/// Shows the circle, contacts and expiry; never the secret.
impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteCode")
            .field("version", &self.version)
            .field("circle", &self.circle)
            .field("contacts", &self.contacts)
            .field("secret", &self.secret)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl InviteCode {
    /// A one-contact invite in the version 1 layout (what earlier versions of kith made),
    /// checked as `parse` would check it: at most [`MAX_INVITE_ADDRESSES`] addresses, each
    /// 1 ..= [`MAX_INVITE_ADDRESS_LEN`] bytes of printable ASCII without spaces, and an
    /// inviter that is a valid ed25519 key. New invites use [`InviteCode::with_contacts`].
    pub fn new(
        circle: CircleId,
        inviter: MemberId,
        addresses: Vec<String>,
        secret: Secret<16>,
        expires_at: u64,
    ) -> Result<InviteCode, InviteError> {
        let contacts = vec![InviteContact {
            member: inviter,
            addresses,
        }];
        Self::checked(VERSION_1, circle, contacts, secret, expires_at)
    }

    /// [`InviteCode::new`] with a fresh secret from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(
        circle: CircleId,
        inviter: MemberId,
        addresses: Vec<String>,
        expires_at: u64,
        rng: &mut R,
    ) -> Result<InviteCode, InviteError> {
        Self::new(circle, inviter, addresses, Secret::random(rng), expires_at)
    }

    /// An invite in the current layout naming `contacts`, the inviter first, checked as
    /// `parse` would check it: 1 ..= [`MAX_INVITE_CONTACTS`] contacts with distinct, valid
    /// ed25519 keys; at most [`MAX_INVITE_ADDRESSES`] addresses per contact and
    /// [`MAX_INVITE_TOTAL_ADDRESSES`] in all, each 1 ..= [`MAX_INVITE_ADDRESS_LEN`] bytes of
    /// printable ASCII without spaces.
    pub fn with_contacts(
        circle: CircleId,
        contacts: Vec<InviteContact>,
        secret: Secret<16>,
        expires_at: u64,
    ) -> Result<InviteCode, InviteError> {
        Self::checked(VERSION, circle, contacts, secret, expires_at)
    }

    /// [`InviteCode::with_contacts`] with a fresh secret from `rng`.
    pub fn generate_with_contacts<R: CryptoRng + ?Sized>(
        circle: CircleId,
        contacts: Vec<InviteContact>,
        expires_at: u64,
        rng: &mut R,
    ) -> Result<InviteCode, InviteError> {
        Self::with_contacts(circle, contacts, Secret::random(rng), expires_at)
    }

    fn checked(
        version: u8,
        circle: CircleId,
        contacts: Vec<InviteContact>,
        secret: Secret<16>,
        expires_at: u64,
    ) -> Result<InviteCode, InviteError> {
        check_contacts(version, &contacts)?;
        Ok(InviteCode {
            version,
            circle,
            contacts,
            secret,
            expires_at,
        })
    }

    /// The circle the invite admits to.
    pub fn circle(&self) -> CircleId {
        self.circle
    }

    /// The inviting member (the first contact); its `PeerId` is [`MemberId::to_peer_id`].
    pub fn inviter(&self) -> MemberId {
        self.contacts
            .first()
            .map_or(MemberId([0; 32]), |c| c.member)
    }

    /// Where the inviter may be reached: multiaddr strings, not checked here.
    pub fn addresses(&self) -> &[String] {
        self.contacts
            .first()
            .map_or(&[], |c| c.addresses.as_slice())
    }

    /// Every member the joiner may ask to be admitted, the inviter first.
    pub fn contacts(&self) -> &[InviteContact] {
        &self.contacts
    }

    /// The layout the code prints as (1 or 2).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The one-time secret; the joiner uses it only to make a [`JoinProof`].
    pub fn secret(&self) -> &Secret<16> {
        &self.secret
    }

    /// Unix seconds after which members refuse the invite.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the invite has expired at `now_secs` (unix seconds); expired at exactly
    /// `expires_at`.
    pub fn is_expired(&self, now_secs: u64) -> bool {
        now_secs >= self.expires_at
    }

    /// What members store to recognise this invite: see [`invite_id`].
    pub fn id(&self) -> [u8; 16] {
        invite_id(&self.secret)
    }

    /// What members store to check join proofs: see [`invite_verifier_key`].
    pub fn verifier_key(&self) -> Secret<32> {
        invite_verifier_key(&self.secret)
    }

    /// The printable invite: `kith1` and lowercase base32 of the layout and checksum.
    ///
    /// The text contains the secret: it is meant for the invitee only.
    pub fn encode(&self) -> String {
        let mut binary = Zeroizing::new(Vec::with_capacity(MAX_BINARY_LEN));
        binary.push(self.version);
        binary.extend_from_slice(&self.circle.0);
        if self.version == VERSION_1 {
            binary.extend_from_slice(&self.inviter().0);
            binary.extend_from_slice(self.secret.expose_secret());
            write_varint(&mut binary, self.expires_at);
            write_addresses(&mut binary, self.addresses());
        } else {
            binary.extend_from_slice(self.secret.expose_secret());
            write_varint(&mut binary, self.expires_at);
            // `checked` bounds the counts and lengths, so these casts never truncate.
            binary.push(self.contacts.len() as u8);
            for contact in &self.contacts {
                binary.extend_from_slice(&contact.member.0);
                write_addresses(&mut binary, &contact.addresses);
            }
        }
        let sum = checksum(&binary);
        binary.extend_from_slice(&sum);
        let mut text = String::with_capacity(MAX_INVITE_CODE_LEN);
        text.push_str(INVITE_PREFIX);
        text.push_str(&encode_id(&binary));
        text
    }

    /// Reads an invite as a person pasted or typed it. Whitespace anywhere is ignored and
    /// upper case is accepted. Checks, in order: length, prefix, characters, checksum,
    /// version, layout. Never panics.
    pub fn parse(text: &str) -> Result<InviteCode, InviteError> {
        let too_long = InviteError::TooLong {
            max: MAX_INVITE_CODE_LEN,
        };
        if text.len() > MAX_INPUT_LEN {
            return Err(too_long);
        }
        let chars: Vec<(usize, char)> = text
            .chars()
            .enumerate()
            .filter(|(_, c)| !c.is_whitespace())
            .map(|(index, c)| (index + 1, c.to_ascii_lowercase()))
            .collect();
        if chars.is_empty() {
            return Err(InviteError::Malformed("empty"));
        }
        let has_prefix = chars.len() >= INVITE_PREFIX.len()
            && chars
                .iter()
                .map(|&(_, c)| c)
                .zip(INVITE_PREFIX.chars())
                .all(|(a, b)| a == b);
        if !has_prefix {
            return Err(InviteError::WrongPrefix);
        }
        let body_chars = chars.get(INVITE_PREFIX.len()..).unwrap_or_default();
        if let Some(&(position, character)) =
            body_chars.iter().find(|&&(_, c)| !ID_ALPHABET.contains(c))
        {
            return Err(InviteError::BadCharacter {
                position,
                character,
            });
        }
        if chars.len() > MAX_INVITE_CODE_LEN {
            return Err(too_long);
        }
        let body: String = body_chars.iter().map(|&(_, c)| c).collect();
        // Every character is in the alphabet, so decoding can fail only on a length no
        // encoding has or on non-zero trailing bits: a character dropped, added or changed.
        let binary = Zeroizing::new(
            BASE32_NOPAD_NOCASE
                .decode(body.as_bytes())
                .map_err(|_| InviteError::BadChecksum)?,
        );
        let Some((content, sum)) = binary.split_last_chunk::<CHECKSUM_LEN>() else {
            return Err(InviteError::BadChecksum);
        };
        if content.is_empty() || checksum(content) != *sum {
            return Err(InviteError::BadChecksum);
        }
        decode_content(content)
    }
}

/// Appends an address count and the addresses; `check_contacts` has bounded both.
fn write_addresses(binary: &mut Vec<u8>, addresses: &[String]) {
    binary.push(addresses.len() as u8);
    for address in addresses {
        binary.push(address.len() as u8);
        binary.extend_from_slice(address.as_bytes());
    }
}

/// Decodes the checksummed content, version first.
fn decode_content(content: &[u8]) -> Result<InviteCode, InviteError> {
    let mut reader = Reader::new(content, InviteError::Malformed);
    let [version] = reader.array::<1>()?;
    if version != VERSION && version != VERSION_1 {
        return Err(InviteError::UnsupportedVersion(version));
    }
    let circle = CircleId(reader.array()?);
    let v1_inviter = if version == VERSION_1 {
        Some(MemberId(reader.array()?))
    } else {
        None
    };
    let secret = Secret::from_bytes(reader.array()?);
    // The expiry is the layout's only varint: say so in its errors.
    let expires_at = reader.varint().map_err(|e| match e {
        InviteError::Malformed("varint is not minimal") => {
            InviteError::Malformed("expiry is not minimally encoded")
        }
        InviteError::Malformed("varint overflows u64") => {
            InviteError::Malformed("expiry overflows u64")
        }
        other => other,
    })?;
    let contacts = match v1_inviter {
        Some(member) => vec![InviteContact {
            member,
            addresses: read_addresses(&mut reader)?,
        }],
        None => {
            let count = usize::from(reader.array::<1>()?[0]);
            if count == 0 {
                return Err(InviteError::Malformed("no contact"));
            }
            if count > MAX_INVITE_CONTACTS {
                return Err(InviteError::Malformed("too many contacts"));
            }
            let mut contacts = Vec::with_capacity(count);
            let mut total = 0;
            for _ in 0..count {
                let member = MemberId(reader.array()?);
                let addresses = read_addresses(&mut reader)?;
                // Checked as we go, so hostile input never makes us hold more than the
                // bound.
                total += addresses.len();
                if total > MAX_INVITE_TOTAL_ADDRESSES {
                    return Err(InviteError::Malformed("too many addresses"));
                }
                contacts.push(InviteContact { member, addresses });
            }
            contacts
        }
    };
    if !reader.rest.is_empty() {
        return Err(InviteError::Malformed("trailing bytes"));
    }
    InviteCode::checked(version, circle, contacts, secret, expires_at)
}

/// One contact's address count and addresses.
fn read_addresses(reader: &mut Reader<'_, InviteError>) -> Result<Vec<String>, InviteError> {
    let count = usize::from(reader.array::<1>()?[0]);
    if count > MAX_INVITE_ADDRESSES {
        return Err(InviteError::Malformed("too many addresses"));
    }
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(reader.array::<1>()?[0]);
        let bytes = reader.take(len)?;
        check_address(bytes)?;
        // Printable ASCII is valid UTF-8; the error branch is never taken.
        let address = std::str::from_utf8(bytes)
            .map_err(|_| InviteError::Malformed("address is not printable ASCII"))?;
        addresses.push(address.to_owned());
    }
    Ok(addresses)
}

/// The rules every layout shares, and version 1's single contact.
fn check_contacts(version: u8, contacts: &[InviteContact]) -> Result<(), InviteError> {
    let most = if version == VERSION_1 {
        1
    } else {
        MAX_INVITE_CONTACTS
    };
    if contacts.is_empty() {
        return Err(InviteError::Malformed("no contact"));
    }
    if contacts.len() > most {
        return Err(InviteError::Malformed("too many contacts"));
    }
    let mut total = 0;
    for (index, contact) in contacts.iter().enumerate() {
        if contact.addresses.len() > MAX_INVITE_ADDRESSES {
            return Err(InviteError::Malformed("too many addresses"));
        }
        total += contact.addresses.len();
        for address in &contact.addresses {
            check_address(address.as_bytes())?;
        }
        x25519_public(&contact.member).map_err(|_| {
            InviteError::Malformed(if index == 0 {
                "inviter is not a valid public key"
            } else {
                "contact is not a valid public key"
            })
        })?;
        if contacts
            .iter()
            .take(index)
            .any(|c| c.member == contact.member)
        {
            return Err(InviteError::Malformed("a contact is listed twice"));
        }
    }
    if total > MAX_INVITE_TOTAL_ADDRESSES {
        return Err(InviteError::Malformed("too many addresses"));
    }
    Ok(())
}

fn check_address(address: &[u8]) -> Result<(), InviteError> {
    if address.is_empty() || address.len() > MAX_INVITE_ADDRESS_LEN {
        return Err(InviteError::Malformed("address length out of range"));
    }
    // No spaces or control characters: addresses are shown to people and must not carry
    // terminal escapes.
    if !address.iter().all(u8::is_ascii_graphic) {
        return Err(InviteError::Malformed("address is not printable ASCII"));
    }
    Ok(())
}

/// First 4 bytes of SHA-256 over the prefix and the binary content.
fn checksum(content: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(INVITE_PREFIX.as_bytes())
        .chain_update(content)
        .finalize();
    let mut sum = [0u8; CHECKSUM_LEN];
    for (out, byte) in sum.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    sum
}

/// What members store and replicate to recognise a pending invite without holding its
/// secret: the first 16 bytes of SHA-256("kith/invite/id/v1" || secret).
pub fn invite_id(secret: &Secret<16>) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(ID_DOMAIN)
        .chain_update(secret.expose_secret())
        .finalize();
    let mut id = [0u8; 16];
    for (out, byte) in id.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    id
}

/// The key members use to check [`JoinProof`]s: HKDF-SHA256 with the secret as input key
/// material, no salt, and info `"kith/invite/verify"`. It cannot be turned back into the
/// secret, but it can make proofs, so it is replicated only among members.
pub fn invite_verifier_key(secret: &Secret<16>) -> Secret<32> {
    let hkdf = Hkdf::<Sha256>::new(None, secret.expose_secret());
    let mut key = Secret::from_bytes([0u8; 32]);
    #[allow(
        clippy::expect_used,
        reason = "HKDF-SHA256 fails only for outputs over 8160 bytes; this one is 32"
    )]
    hkdf.expand(VERIFY_INFO, &mut key.0)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// A joiner's proof that it holds an invite's secret, bound to one connection:
/// `HMAC-SHA256(verifier key, "kith/join/v1" || circle || len || joiner || len || admitter)`
/// where each peer id is its libp2p byte form preceded by its length (u64, big endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinProof(pub [u8; 32]);

impl JoinProof {
    /// The proof that `joiner`, connected to `admitter`, holds `secret` for `circle`.
    pub fn create(
        secret: &Secret<16>,
        circle: &CircleId,
        joiner: &libp2p_identity::PeerId,
        admitter: &libp2p_identity::PeerId,
    ) -> JoinProof {
        JoinProof(join_mac(
            &invite_verifier_key(secret),
            circle,
            joiner,
            admitter,
        ))
    }

    /// Whether this proof was made for exactly this circle, joiner and admitter, by someone
    /// holding the invite. Compares in constant time.
    pub fn verify(
        &self,
        verifier_key: &Secret<32>,
        circle: &CircleId,
        joiner: &libp2p_identity::PeerId,
        admitter: &libp2p_identity::PeerId,
    ) -> bool {
        let expected = join_mac(verifier_key, circle, joiner, admitter);
        expected.ct_eq(&self.0).into()
    }
}

fn join_mac(
    verifier_key: &Secret<32>,
    circle: &CircleId,
    joiner: &libp2p_identity::PeerId,
    admitter: &libp2p_identity::PeerId,
) -> [u8; 32] {
    #[allow(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; new_from_slice never fails"
    )]
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(verifier_key.expose_secret())
        .expect("HMAC takes keys of any length");
    mac.update(JOIN_DOMAIN);
    mac.update(&circle.0);
    for peer in [joiner, admitter] {
        let bytes = peer.to_bytes();
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(&bytes);
    }
    mac.finalize().into_bytes().into()
}

/// An invite's signing authority: an ed25519 key derived from the secret (HKDF-SHA256, info
/// `"kith/invite/authority/v1"`). Its public half is what a circle replicates: every member
/// can check a [`JoinSignature`] with it, but, unlike the [`JoinProof`] verifier key, nobody
/// who only holds the replicated record can make one. Members therefore cannot spend an
/// invite on an identity of their own choosing.
pub fn invite_authority(secret: &Secret<16>) -> crate::DeviceIdentity {
    let hkdf = Hkdf::<Sha256>::new(None, secret.expose_secret());
    let mut seed = Secret::from_bytes([0u8; 32]);
    #[allow(
        clippy::expect_used,
        reason = "HKDF-SHA256 fails only for outputs over 8160 bytes; this one is 32"
    )]
    hkdf.expand(AUTHORITY_INFO, &mut seed.0)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    crate::DeviceIdentity::from_secret(&seed)
}

/// A joiner's signature, made with the invite's authority key, over
/// `"kith/join/sig/v1" || circle || len || joiner || len || admitter` (peer ids in their
/// libp2p byte form, each preceded by its length as u64 big endian). Both peer ids are
/// authenticated by the Noise session, so a signature seen by anyone is useless from another
/// peer or toward another admitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinSignature(pub [u8; 64]);

impl JoinSignature {
    /// Signs for `joiner`, connected to `admitter`, holding `secret` for `circle`.
    pub fn create(
        secret: &Secret<16>,
        circle: &CircleId,
        joiner: &libp2p_identity::PeerId,
        admitter: &libp2p_identity::PeerId,
    ) -> JoinSignature {
        JoinSignature(invite_authority(secret).sign(&join_message(circle, joiner, admitter)))
    }

    /// Whether the holder of the invite whose authority is `verifier` made this for exactly
    /// this circle, joiner and admitter.
    pub fn verify(
        &self,
        verifier: &[u8; 32],
        circle: &CircleId,
        joiner: &libp2p_identity::PeerId,
        admitter: &libp2p_identity::PeerId,
    ) -> bool {
        crate::verify_signature(
            &crate::MemberId(*verifier),
            &join_message(circle, joiner, admitter),
            &self.0,
        )
        .is_ok()
    }
}

fn join_message(
    circle: &CircleId,
    joiner: &libp2p_identity::PeerId,
    admitter: &libp2p_identity::PeerId,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(128);
    message.extend_from_slice(JOIN_SIGNATURE_DOMAIN);
    message.extend_from_slice(&circle.0);
    for peer in [joiner, admitter] {
        let bytes = peer.to_bytes();
        message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        message.extend_from_slice(&bytes);
    }
    message
}

const AUTHORITY_INFO: &[u8] = b"kith/invite/authority/v1";
const JOIN_SIGNATURE_DOMAIN: &[u8] = b"kith/join/sig/v1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceIdentity;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn sample(addresses: &[&str]) -> InviteCode {
        let mut rng = StdRng::seed_from_u64(11);
        let inviter = DeviceIdentity::generate(&mut rng).member_id();
        InviteCode::generate(
            CircleId::random(&mut rng),
            inviter,
            addresses.iter().map(|a| (*a).to_owned()).collect(),
            1_800_000_000,
            &mut rng,
        )
        .unwrap()
    }

    /// A version 2 invite with `contacts` contacts, each with the addresses given.
    fn sample_v2(contacts: usize, addresses: &[&str]) -> InviteCode {
        let mut rng = StdRng::seed_from_u64(12);
        let contacts = (0..contacts)
            .map(|_| InviteContact {
                member: DeviceIdentity::generate(&mut rng).member_id(),
                addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect();
        InviteCode::generate_with_contacts(
            CircleId::random(&mut rng),
            contacts,
            1_800_000_000,
            &mut rng,
        )
        .unwrap()
    }

    const TCP: &str = "/ip4/192.168.1.20/tcp/41000";
    const QUIC: &str = "/ip4/192.168.1.20/udp/41000/quic-v1";

    #[test]
    fn version_2_round_trip_and_typical_length() {
        for contacts in 1..=MAX_INVITE_CONTACTS {
            for addresses in [&[][..], &[TCP][..], &[TCP, QUIC][..]] {
                let invite = sample_v2(contacts, addresses);
                let text = invite.encode();
                assert!(text.len() <= MAX_INVITE_CODE_LEN);
                let parsed = InviteCode::parse(&text).unwrap();
                assert_eq!(parsed, invite);
                assert_eq!(parsed.version(), 2);
                assert_eq!(parsed.contacts().len(), contacts);
                assert_eq!(parsed.inviter(), invite.contacts()[0].member);
                assert_eq!(parsed.addresses(), &invite.contacts()[0].addresses[..]);
                assert_eq!(InviteCode::parse(&text.to_uppercase()), Ok(invite));
            }
        }
        // One LAN address over TCP and one over QUIC per contact: what a typical circle
        // hands out.
        let one = sample_v2(1, &[TCP, QUIC]).encode().len();
        let four = sample_v2(4, &[TCP, QUIC]).encode().len();
        eprintln!("typical v2 invite: 1 contact {one} chars, 4 contacts {four} chars");
        assert_eq!(sample_v2(1, &[]).encode().len(), 127);
        assert_eq!(sample_v2(1, &[TCP]).encode().len(), 172);
        assert_eq!(one, 229);
        assert_eq!(four, 695);
    }

    /// The version 2 layout byte by byte, built independently of `encode`.
    #[test]
    fn version_2_layout_follows_documentation() {
        let invite = sample_v2(2, &["/ip4/10.0.0.1/tcp/1"]);
        let mut expected = vec![2u8];
        expected.extend_from_slice(&invite.circle().0);
        expected.extend_from_slice(invite.secret().expose_secret());
        // 1_800_000_000 as minimal LEB128.
        expected.extend_from_slice(&[0x80, 0xa4, 0xa7, 0xda, 0x06]);
        expected.push(2);
        for contact in invite.contacts() {
            expected.extend_from_slice(&contact.member.0);
            expected.push(1);
            expected.push(19);
            expected.extend_from_slice(b"/ip4/10.0.0.1/tcp/1");
        }
        assert_eq!(invite.encode(), code_for(&expected));
    }

    #[test]
    fn round_trip_and_typical_length() {
        for addresses in [
            &[][..],
            &["/ip4/192.168.1.20/tcp/41000"][..],
            &["/ip4/192.168.1.20/tcp/41000", "/ip6/2001:db8::7/tcp/41000"][..],
        ] {
            let invite = sample(addresses);
            let text = invite.encode();
            eprintln!("{} addresses: {} chars", addresses.len(), text.len());
            assert!(text.starts_with(INVITE_PREFIX));
            assert!(text.len() <= MAX_INVITE_CODE_LEN);
            assert_eq!(InviteCode::parse(&text), Ok(invite.clone()));
            assert_eq!(InviteCode::parse(&text.to_uppercase()), Ok(invite.clone()));
            // Whitespace and line breaks anywhere are ignored.
            let spaced: String = text
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let gap = match i % 7 {
                        0 => Some(' '),
                        3 => Some('\n'),
                        _ => None,
                    };
                    gap.into_iter().chain([c])
                })
                .collect();
            assert_eq!(
                InviteCode::parse(&format!("  {spaced}\r\n")),
                Ok(invite.clone())
            );
        }
        assert_eq!(sample(&[]).encode().len(), 125);
        assert_eq!(sample(&["/ip4/192.168.1.20/tcp/41000"]).encode().len(), 170);
    }

    #[test]
    fn largest_invite_fits_the_bound() {
        let long = "a".repeat(MAX_INVITE_ADDRESS_LEN);
        let mut rng = StdRng::seed_from_u64(1);
        let largest_v1 = InviteCode::new(
            CircleId([0xff; 16]),
            DeviceIdentity::generate(&mut rng).member_id(),
            vec![long.clone(); MAX_INVITE_ADDRESSES],
            Secret::from_bytes([0xff; 16]),
            u64::MAX,
        )
        .unwrap();
        let text = largest_v1.encode();
        assert!(text.len() < MAX_INVITE_CODE_LEN);
        assert_eq!(InviteCode::parse(&text), Ok(largest_v1));
        // Every contact at the limit, addresses spread up to the total limit.
        let per_contact = MAX_INVITE_TOTAL_ADDRESSES / MAX_INVITE_CONTACTS;
        assert!(per_contact <= MAX_INVITE_ADDRESSES);
        let contacts = (0..MAX_INVITE_CONTACTS)
            .map(|_| InviteContact {
                member: DeviceIdentity::generate(&mut rng).member_id(),
                addresses: vec![long.clone(); per_contact],
            })
            .collect();
        let invite = InviteCode::with_contacts(
            CircleId([0xff; 16]),
            contacts,
            Secret::from_bytes([0xff; 16]),
            u64::MAX,
        )
        .unwrap();
        let text = invite.encode();
        assert_eq!(text.len(), MAX_INVITE_CODE_LEN);
        assert_eq!(InviteCode::parse(&text), Ok(invite));
        assert_eq!(
            InviteCode::parse(&format!("{text}a")),
            Err(InviteError::TooLong {
                max: MAX_INVITE_CODE_LEN
            })
        );
    }

    #[test]
    fn every_single_character_change_is_caught() {
        every_single_character_change_is_caught_in(&sample(&[TCP]).encode());
        every_single_character_change_is_caught_in(&sample_v2(2, &[TCP]).encode());
    }

    fn every_single_character_change_is_caught_in(text: &str) {
        let chars: Vec<char> = text.chars().collect();
        for position in 0..chars.len() {
            for step in [1, 2, 5, 17, 31] {
                let mut changed = chars.clone();
                let alphabet: Vec<char> = ID_ALPHABET.chars().collect();
                let index = alphabet
                    .iter()
                    .position(|&c| c == chars[position])
                    .unwrap_or(0);
                changed[position] = alphabet[(index + step) % alphabet.len()];
                let changed: String = changed.into_iter().collect();
                let result = InviteCode::parse(&changed);
                if position < INVITE_PREFIX.len() {
                    assert_eq!(result, Err(InviteError::WrongPrefix), "{changed}");
                } else {
                    assert_eq!(result, Err(InviteError::BadChecksum), "{changed}");
                }
            }
        }
        // Dropped, doubled and swapped characters are caught too.
        for position in INVITE_PREFIX.len()..chars.len() {
            let mut dropped = chars.clone();
            dropped.remove(position);
            let dropped: String = dropped.into_iter().collect();
            assert_eq!(InviteCode::parse(&dropped), Err(InviteError::BadChecksum));
            let mut doubled = chars.clone();
            doubled.insert(position, chars[position]);
            let doubled: String = doubled.into_iter().collect();
            assert_eq!(InviteCode::parse(&doubled), Err(InviteError::BadChecksum));
            if position + 1 < chars.len() && chars[position] != chars[position + 1] {
                let mut swapped = chars.clone();
                swapped.swap(position, position + 1);
                let swapped: String = swapped.into_iter().collect();
                assert_eq!(InviteCode::parse(&swapped), Err(InviteError::BadChecksum));
            }
        }
    }

    #[test]
    fn errors_are_distinct_and_clear() {
        let text = sample(&[]).encode();
        assert_eq!(InviteCode::parse(""), Err(InviteError::Malformed("empty")));
        assert_eq!(
            InviteCode::parse(" \n "),
            Err(InviteError::Malformed("empty"))
        );
        assert_eq!(
            InviteCode::parse(&text.replacen("kith1", "kith2", 1)),
            Err(InviteError::WrongPrefix)
        );
        assert_eq!(InviteCode::parse("kith"), Err(InviteError::WrongPrefix));
        assert_eq!(InviteCode::parse(&text[5..]), Err(InviteError::WrongPrefix));
        // A `1` and an `0` are typical misreadings of `l` and `o`; position counts from 1
        // in the text as given, whitespace included.
        let mut typo = text.clone();
        typo.replace_range(10..11, "0");
        let error = InviteCode::parse(&format!(" {typo}")).unwrap_err();
        assert_eq!(
            error,
            InviteError::BadCharacter {
                position: 12,
                character: '0'
            }
        );
        assert_eq!(
            error.to_string(),
            "character '0' at position 12 cannot appear in an invite \
             (only letters and the digits 2-7 can)"
        );
        let mut non_ascii = text.clone();
        non_ascii.replace_range(20..21, "é");
        assert!(matches!(
            InviteCode::parse(&non_ascii),
            Err(InviteError::BadCharacter {
                position: 21,
                character: 'é'
            })
        ));
        assert_eq!(InviteCode::parse("kith1"), Err(InviteError::BadChecksum));
        assert_eq!(
            InviteCode::parse(&text[..text.len() - 8]),
            Err(InviteError::BadChecksum)
        );
        assert!(
            InviteError::BadChecksum.to_string().contains("mistyped"),
            "the message should suggest a typo"
        );
        assert_eq!(
            InviteCode::parse(&"a".repeat(MAX_INPUT_LEN + 1)),
            Err(InviteError::TooLong {
                max: MAX_INVITE_CODE_LEN
            })
        );
    }

    /// Builds a code from raw content with a correct checksum, to reach the layout checks.
    fn code_for(content: &[u8]) -> String {
        let sum = checksum(content);
        format!("{INVITE_PREFIX}{}", encode_id(&[content, &sum].concat()))
    }

    #[test]
    fn version_and_layout_are_checked_behind_the_checksum() {
        let invite = sample(&["/ip4/10.0.0.1/tcp/1"]);
        let text = invite.encode();
        let binary = BASE32_NOPAD_NOCASE.decode(&text.as_bytes()[5..]).unwrap();
        let content = &binary[..binary.len() - CHECKSUM_LEN];
        assert_eq!(InviteCode::parse(&code_for(content)), Ok(invite));

        for version in [0, 3, 255] {
            let mut other = content.to_vec();
            other[0] = version;
            assert_eq!(
                InviteCode::parse(&code_for(&other)),
                Err(InviteError::UnsupportedVersion(version))
            );
        }
        let malformed = |bytes: &[u8], reason| {
            assert_eq!(
                InviteCode::parse(&code_for(bytes)),
                Err(InviteError::Malformed(reason)),
                "{reason}"
            );
        };
        malformed(&content[..content.len() - 1], "truncated");
        malformed(&[content, &[0]].concat(), "trailing bytes");
        // Offsets: version 0, circle 1, inviter 17, secret 49, expiry 65 (5 bytes), count 70.
        let mut bad_count = content.to_vec();
        bad_count[70] = 9;
        malformed(&bad_count, "too many addresses");
        let mut empty_address = content[..71].to_vec();
        empty_address[70] = 1;
        empty_address.push(0);
        malformed(&empty_address, "address length out of range");
        let mut control = content.to_vec();
        control[72] = b'\n';
        malformed(&control, "address is not printable ASCII");
        let mut space = content.to_vec();
        space[72] = b' ';
        malformed(&space, "address is not printable ASCII");
        let mut bad_inviter = content.to_vec();
        bad_inviter[17..49].copy_from_slice(&[0xff; 32]);
        malformed(&bad_inviter, "inviter is not a valid public key");
        let mut non_minimal = content[..65].to_vec();
        non_minimal.extend_from_slice(&[0x80, 0x00, 0x00]);
        malformed(&non_minimal, "expiry is not minimally encoded");
        let mut overflow = content[..65].to_vec();
        overflow.extend_from_slice(&[0xff; 9]);
        overflow.extend_from_slice(&[0x02, 0x00]);
        malformed(&overflow, "expiry overflows u64");
        assert_eq!(
            InviteCode::parse(&code_for(&[])),
            Err(InviteError::BadChecksum)
        );
    }

    #[test]
    fn version_2_layout_is_checked_behind_the_checksum() {
        let invite = sample_v2(2, &["/ip4/10.0.0.1/tcp/1"]);
        let text = invite.encode();
        let binary = BASE32_NOPAD_NOCASE.decode(&text.as_bytes()[5..]).unwrap();
        let content = &binary[..binary.len() - CHECKSUM_LEN];
        assert_eq!(InviteCode::parse(&code_for(content)), Ok(invite.clone()));
        let malformed = |bytes: &[u8], reason| {
            assert_eq!(
                InviteCode::parse(&code_for(bytes)),
                Err(InviteError::Malformed(reason)),
                "{reason}"
            );
        };
        // Cut anywhere, even right after the first contact, the layout is truncated.
        for len in 1..content.len() {
            malformed(&content[..len], "truncated");
        }
        malformed(&[content, &[0]].concat(), "trailing bytes");
        // Offsets: version 0, circle 1, secret 17, expiry 33 (5 bytes), count 38, first
        // contact 39 (key 32, address count 71, length 72, address 73 ..= 91), second
        // contact 92 (key 32, address count 124, ...).
        let mut none = content[..39].to_vec();
        none[38] = 0;
        malformed(&none, "no contact");
        let mut five = content.to_vec();
        five[38] = 5;
        malformed(&five, "too many contacts");
        let mut nine = content.to_vec();
        nine[71] = 9;
        malformed(&nine, "too many addresses");
        let mut empty_address = content[..72].to_vec();
        empty_address.push(0);
        malformed(&empty_address, "address length out of range");
        let mut control = content.to_vec();
        control[73] = 0x1b;
        malformed(&control, "address is not printable ASCII");
        let mut bad_inviter = content.to_vec();
        bad_inviter[39..71].copy_from_slice(&[0xff; 32]);
        malformed(&bad_inviter, "inviter is not a valid public key");
        let mut bad_contact = content.to_vec();
        bad_contact[92..124].copy_from_slice(&[0xff; 32]);
        malformed(&bad_contact, "contact is not a valid public key");
        let mut twice = content.to_vec();
        twice.copy_within(39..71, 92);
        malformed(&twice, "a contact is listed twice");
        let mut non_minimal = content[..33].to_vec();
        non_minimal.extend_from_slice(&[0x80, 0x00, 0x00]);
        malformed(&non_minimal, "expiry is not minimally encoded");

        // The total bound: four contacts of five addresses each (each within the
        // per-contact bound) make 20 > 16.
        let mut rng = StdRng::seed_from_u64(3);
        let mut many = content[..38].to_vec();
        many.push(4);
        for _ in 0..4 {
            many.extend_from_slice(&DeviceIdentity::generate(&mut rng).member_id().0);
            many.push(5);
            for _ in 0..5 {
                many.extend_from_slice(&[1, b'a']);
            }
        }
        malformed(&many, "too many addresses");
    }

    #[test]
    fn version_1_codes_still_read_and_print_back_unchanged() {
        let invite = sample(&[TCP]);
        assert_eq!(invite.version(), 1);
        let text = invite.encode();
        let parsed = InviteCode::parse(&text).unwrap();
        assert_eq!(parsed.version(), 1);
        assert_eq!(parsed.contacts().len(), 1);
        assert_eq!(parsed.contacts()[0].member, invite.inviter());
        assert_eq!(parsed.contacts()[0].addresses, vec![TCP.to_string()]);
        assert_eq!(parsed.encode(), text);
        // The same invite in the new layout is a different code for the same contact.
        let v2 = InviteCode::with_contacts(
            invite.circle(),
            invite.contacts().to_vec(),
            invite.secret().clone(),
            invite.expires_at(),
        )
        .unwrap();
        assert_ne!(v2.encode(), text);
        assert_eq!(v2.id(), invite.id());
        assert_eq!(InviteCode::parse(&v2.encode()), Ok(v2));
    }

    #[test]
    fn with_contacts_refuses_what_parse_would_refuse() {
        let invite = sample_v2(4, &[TCP]);
        let build = |contacts: Vec<InviteContact>| {
            InviteCode::with_contacts(invite.circle(), contacts, invite.secret().clone(), 1)
        };
        let contacts = invite.contacts().to_vec();
        assert!(build(contacts.clone()).is_ok());
        assert_eq!(build(Vec::new()), Err(InviteError::Malformed("no contact")));
        let mut rng = StdRng::seed_from_u64(4);
        let mut five = contacts.clone();
        five.push(InviteContact {
            member: DeviceIdentity::generate(&mut rng).member_id(),
            addresses: Vec::new(),
        });
        assert_eq!(
            build(five),
            Err(InviteError::Malformed("too many contacts"))
        );
        let mut twice = contacts.clone();
        twice[3].member = twice[0].member;
        assert_eq!(
            build(twice),
            Err(InviteError::Malformed("a contact is listed twice"))
        );
        let mut nine = contacts.clone();
        nine[1].addresses = vec![TCP.into(); 9];
        assert_eq!(
            build(nine),
            Err(InviteError::Malformed("too many addresses"))
        );
        let mut seventeen = contacts.clone();
        for contact in &mut seventeen {
            contact.addresses = vec![TCP.into(); 4];
        }
        assert!(build(seventeen.clone()).is_ok());
        seventeen[0].addresses.push(TCP.into());
        assert_eq!(
            build(seventeen),
            Err(InviteError::Malformed("too many addresses"))
        );
        let mut spaced = contacts.clone();
        spaced[2].addresses = vec!["a b".into()];
        assert!(build(spaced).is_err());
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let mut weak = contacts;
        weak[1].member = MemberId(identity_point);
        assert_eq!(
            build(weak),
            Err(InviteError::Malformed("contact is not a valid public key"))
        );
    }

    #[test]
    fn new_refuses_what_parse_would_refuse() {
        let invite = sample(&[]);
        let build = |addresses: Vec<String>| {
            InviteCode::new(
                invite.circle(),
                invite.inviter(),
                addresses,
                invite.secret().clone(),
                1,
            )
        };
        assert!(build(vec!["/dns/a/tcp/1".into(); 8]).is_ok());
        assert!(build(vec!["/dns/a/tcp/1".into(); 9]).is_err());
        assert!(build(vec![String::new()]).is_err());
        assert!(build(vec!["a".repeat(129)]).is_err());
        assert!(build(vec!["a b".into()]).is_err());
        assert!(build(vec!["é".into()]).is_err());
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert!(
            InviteCode::new(
                invite.circle(),
                MemberId(identity_point),
                vec![],
                Secret::from_bytes([1; 16]),
                1
            )
            .is_err()
        );
    }

    #[test]
    fn expiry() {
        let invite = sample(&[]);
        assert!(!invite.is_expired(0));
        assert!(!invite.is_expired(1_799_999_999));
        assert!(invite.is_expired(1_800_000_000));
        assert!(invite.is_expired(u64::MAX));
    }

    #[test]
    fn debug_hides_the_secret() {
        let invite = sample(&[]);
        let debug = format!("{invite:?}");
        assert!(debug.contains("Secret(***)"));
        assert!(!debug.contains(&encode_id(invite.secret().expose_secret())));
    }

    #[test]
    fn join_proof_binds_circle_joiner_and_admitter() {
        let mut rng = StdRng::seed_from_u64(5);
        let invite = sample(&[]);
        let joiner = DeviceIdentity::generate(&mut rng).peer_id();
        let admitter = DeviceIdentity::generate(&mut rng).peer_id();
        let other = DeviceIdentity::generate(&mut rng).peer_id();
        let circle = invite.circle();
        let proof = JoinProof::create(invite.secret(), &circle, &joiner, &admitter);
        let verifier = invite.verifier_key();
        assert!(proof.verify(&verifier, &circle, &joiner, &admitter));
        assert!(!proof.verify(&verifier, &CircleId([0; 16]), &joiner, &admitter));
        assert!(!proof.verify(&verifier, &circle, &other, &admitter));
        assert!(!proof.verify(&verifier, &circle, &joiner, &other));
        assert!(!proof.verify(&verifier, &circle, &admitter, &joiner));
        let other_secret = Secret::random(&mut rng);
        assert!(!proof.verify(
            &invite_verifier_key(&other_secret),
            &circle,
            &joiner,
            &admitter
        ));
        let mut altered = proof;
        altered.0[0] ^= 1;
        assert!(!altered.verify(&verifier, &circle, &joiner, &admitter));
    }

    /// The documented derivations, computed independently.
    #[test]
    fn derivations_follow_documentation() {
        let secret = Secret::from_bytes([7u8; 16]);
        let digest = crate::sha256(&[b"kith/invite/id/v1".as_slice(), &[7u8; 16]].concat());
        assert_eq!(invite_id(&secret), digest[..16]);
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(None, &[7u8; 16])
            .expand(b"kith/invite/verify", &mut expected)
            .unwrap();
        assert_eq!(invite_verifier_key(&secret).expose_secret(), &expected);
        assert_ne!(invite_id(&secret), invite_id(&Secret::from_bytes([8; 16])));
        assert_eq!(
            checksum(b"x"),
            crate::sha256(b"kith1x")[..4],
            "checksum = SHA-256(prefix || content)[..4]"
        );
    }

    #[test]
    fn join_signatures_bind_circle_joiner_and_admitter() {
        let mut rng = StdRng::seed_from_u64(99);
        let secret = Secret::<16>::random(&mut rng);
        let other_secret = Secret::<16>::random(&mut rng);
        let circle = CircleId::random(&mut rng);
        let other_circle = CircleId::random(&mut rng);
        let joiner = DeviceIdentity::generate(&mut rng).peer_id();
        let admitter = DeviceIdentity::generate(&mut rng).peer_id();
        let third = DeviceIdentity::generate(&mut rng).peer_id();
        let verifier = invite_authority(&secret).member_id().0;
        let signature = JoinSignature::create(&secret, &circle, &joiner, &admitter);
        assert!(signature.verify(&verifier, &circle, &joiner, &admitter));
        assert!(!signature.verify(&verifier, &other_circle, &joiner, &admitter));
        assert!(!signature.verify(&verifier, &circle, &third, &admitter));
        assert!(!signature.verify(&verifier, &circle, &joiner, &third));
        assert!(!signature.verify(&verifier, &circle, &admitter, &joiner));
        let other = invite_authority(&other_secret).member_id().0;
        assert!(!signature.verify(&other, &circle, &joiner, &admitter));
        let mut tampered = signature;
        tampered.0[0] ^= 1;
        assert!(!tampered.verify(&verifier, &circle, &joiner, &admitter));
        // The authority is a pure function of the secret.
        assert_eq!(invite_authority(&secret).member_id().0, verifier);
    }
}
