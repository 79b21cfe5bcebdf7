//! The key file: the store's master key sealed under a key derived from the passphrase.
//!
//! Layout (110 bytes):
//!
//! ```text
//! magic "KITHKEY1" (8) | format version u16 LE (2)
//! argon2id m_cost_kib u32 LE | t_cost u32 LE | p_cost u32 LE | salt (16)      <- header, 38 bytes
//! nonce (24) | XChaCha20-Poly1305(master key (32)) | tag (16)                 <- 72 bytes
//! ```
//!
//! The whole header is the associated data, so changing the parameters or the version makes
//! the key file fail to open rather than silently weaken it.

use kith_crypto::{
    CryptoError, KdfParams, Secret, derive_key_from_passphrase, open_random_nonce,
    seal_random_nonce,
};
use zeroize::Zeroizing;

use crate::StoreError;

const MAGIC: &[u8; 8] = b"KITHKEY1";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 3 * 4 + 16;
const SEALED_LEN: usize = 24 + 32 + 16;
/// Exact length of a version-1 key file.
pub(crate) const KEY_FILE_LEN: usize = HEADER_LEN + SEALED_LEN;

/// Upper bounds on parameters read from disk, so a garbled key file cannot make argon2
/// allocate gigabytes or spin for minutes. The same bounds kith-crypto enforces, checked here too so
/// the error names the key file; far above what [`KdfParams::recommended`] uses.
const MAX_M_COST_KIB: u32 = 1 << 20;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

fn header(params: &KdfParams) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let parts: [&[u8]; 6] = [
        MAGIC,
        &VERSION.to_le_bytes(),
        &params.m_cost_kib.to_le_bytes(),
        &params.t_cost.to_le_bytes(),
        &params.p_cost.to_le_bytes(),
        &params.salt,
    ];
    let mut at = 0;
    for part in parts {
        if let Some(dst) = out.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    out
}

/// Builds the key file's bytes for `master`.
pub(crate) fn seal<R: rand::CryptoRng + ?Sized>(
    passphrase: &[u8],
    params: &KdfParams,
    master: &Secret<32>,
    rng: &mut R,
) -> Result<Vec<u8>, StoreError> {
    let kek = derive_key_from_passphrase(passphrase, params)
        .map_err(|e| StoreError::Kdf(e.to_string()))?;
    let header = header(params);
    let sealed = seal_random_nonce(&kek, &header, master.expose_secret(), rng);
    let mut out = Vec::with_capacity(KEY_FILE_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    if out.len() != KEY_FILE_LEN {
        return Err(StoreError::Kdf(format!(
            "sealed key has unexpected length {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Splits off the next `N` bytes.
fn take<'a, const N: usize>(rest: &mut &'a [u8]) -> Option<&'a [u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(head)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("key file {what}"))
}

/// Parses the key file without touching the KDF; every bound is checked first.
pub(crate) fn parse(bytes: &[u8]) -> Result<(KdfParams, &[u8]), StoreError> {
    if bytes.len() < MAGIC.len() || bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err(corrupt("is not a Kith key file (bad magic)"));
    }
    if bytes.len() != KEY_FILE_LEN {
        return Err(corrupt(&format!(
            "has length {} instead of {KEY_FILE_LEN} (truncated or garbled)",
            bytes.len()
        )));
    }
    let mut rest = bytes;
    let _magic = take::<8>(&mut rest);
    let version = take::<2>(&mut rest).map(|b| u16::from_le_bytes(*b));
    if version != Some(VERSION) {
        return Err(corrupt(&format!(
            "has unsupported format version {}",
            version.unwrap_or(0)
        )));
    }
    let mut u32_field = || take::<4>(&mut rest).map(|b| u32::from_le_bytes(*b));
    let (Some(m), Some(t), Some(p)) = (u32_field(), u32_field(), u32_field()) else {
        return Err(corrupt("is truncated"));
    };
    let Some(salt) = take::<16>(&mut rest) else {
        return Err(corrupt("is truncated"));
    };
    if !(8..=MAX_M_COST_KIB).contains(&m)
        || !(1..=MAX_T_COST).contains(&t)
        || !(1..=MAX_P_COST).contains(&p)
    {
        return Err(corrupt("names out-of-range key derivation parameters"));
    }
    let params = KdfParams {
        m_cost_kib: m,
        t_cost: t,
        p_cost: p,
        salt: *salt,
    };
    Ok((params, rest))
}

/// Parses the key file and unseals the master key.
pub(crate) fn open(bytes: &[u8], passphrase: &[u8]) -> Result<Secret<32>, StoreError> {
    let (params, sealed) = parse(bytes)?;
    let kek = derive_key_from_passphrase(passphrase, &params).map_err(|e| {
        corrupt(&format!(
            "names parameters the key derivation refuses ({e})"
        ))
    })?;
    let header = header(&params);
    let plain = open_random_nonce(&kek, &header, sealed).map_err(|e| match e {
        CryptoError::DecryptFailed | CryptoError::WrongPassphrase => StoreError::WrongPassphrase,
        other => corrupt(&format!("is garbled ({other})")),
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != key.len() {
        return Err(corrupt("holds a key of the wrong length"));
    }
    key.copy_from_slice(&plain);
    Ok(Secret::from_bytes(*key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Garbage never panics and never reaches the KDF unless it has the right shape.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_rejects_every_truncation(cut in 0usize..KEY_FILE_LEN) {
            let params = KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1, salt: [7; 16] };
            let mut bytes = header(&params).to_vec();
            bytes.extend_from_slice(&[0u8; SEALED_LEN]);
            prop_assert!(parse(&bytes).is_ok());
            prop_assert!(matches!(parse(&bytes[..cut]), Err(StoreError::Corrupt(_))));
        }
    }
}
