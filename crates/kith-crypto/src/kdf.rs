//! Key derivation: argon2id from a passphrase, HKDF-SHA256 for subkeys.

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use rand::CryptoRng;
use sha2::Sha256;

use crate::{CryptoError, Secret};

/// Argon2id parameters, stored beside what they protect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB; the main cost for an attacker guessing passphrases on GPUs.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
    /// Random per store, so one guess cannot be tried against many stores at once.
    pub salt: [u8; 16],
}

impl KdfParams {
    /// Largest memory cost accepted: 1 GiB. Parameters are read from disk, and a tampered
    /// file must not make the daemon allocate without bound.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// Largest number of passes accepted, so a tampered file cannot stall unlocking.
    pub const MAX_T_COST: u32 = 16;
    /// Largest number of lanes accepted.
    pub const MAX_P_COST: u32 = 8;

    /// The parameters new stores use: 64 MiB, 3 passes, 1 lane, random salt.
    pub fn recommended<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
            salt,
        }
    }

    /// Refuses parameters outside the bounds above or below argon2's own minimums.
    pub fn check(&self) -> Result<(), CryptoError> {
        let Self {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
            ..
        } = *self;
        if !(1..=Self::MAX_P_COST).contains(&p) {
            return Err(CryptoError::Kdf(format!(
                "lanes {p} outside 1..={}",
                Self::MAX_P_COST
            )));
        }
        if !(1..=Self::MAX_T_COST).contains(&t) {
            return Err(CryptoError::Kdf(format!(
                "passes {t} outside 1..={}",
                Self::MAX_T_COST
            )));
        }
        let min_m = 8 * p;
        if !(min_m..=Self::MAX_M_COST_KIB).contains(&m) {
            return Err(CryptoError::Kdf(format!(
                "memory {m} KiB outside {min_m}..={} KiB",
                Self::MAX_M_COST_KIB
            )));
        }
        Ok(())
    }
}

/// Argon2id (v1.3) of `passphrase` under `params`: the key that unlocks the local store.
///
/// Parameters are checked first (see [`KdfParams::check`]), since they come from disk.
pub fn derive_key_from_passphrase(
    passphrase: &[u8],
    params: &KdfParams,
) -> Result<Secret<32>, CryptoError> {
    params.check()?;
    let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    // Derive straight into the secret so no unzeroized copy of the key exists.
    let mut key = Secret::from_bytes([0u8; 32]);
    argon
        .hash_password_into(passphrase, &params.salt, &mut key.0)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(key)
}

/// HKDF-SHA256 subkey of `key` for `purpose` (domain separation) and optional `salt`.
///
/// `salt` is the HKDF salt (empty is the same as none); the info is `"kith/" || purpose`,
/// so subkeys for different purposes are independent.
pub fn derive_subkey(key: &Secret<32>, purpose: &str, salt: &[u8]) -> Secret<32> {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), key.expose_secret());
    let mut subkey = Secret::from_bytes([0u8; 32]);
    #[allow(
        clippy::expect_used,
        reason = "HKDF-SHA256 fails only for outputs over 8160 bytes; this one is 32"
    )]
    hkdf.expand_multi_info(&[b"kith/", purpose.as_bytes()], &mut subkey.0)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    subkey
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(salt: [u8; 16]) -> KdfParams {
        KdfParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
            salt,
        }
    }

    #[test]
    fn recommended_params_work() {
        let mut rng = rand::rng();
        let params = KdfParams::recommended(&mut rng);
        assert_eq!(
            (params.m_cost_kib, params.t_cost, params.p_cost),
            (65536, 3, 1)
        );
        assert_ne!(params.salt, KdfParams::recommended(&mut rng).salt);
        let started = std::time::Instant::now();
        let key = derive_key_from_passphrase(b"correct horse", &params).unwrap();
        eprintln!("argon2id recommended: {:?}", started.elapsed());
        assert_eq!(
            key,
            derive_key_from_passphrase(b"correct horse", &params).unwrap()
        );
        assert_ne!(
            key,
            derive_key_from_passphrase(b"correct horsf", &params).unwrap()
        );
    }

    #[test]
    fn salt_and_passphrase_matter() {
        let a = derive_key_from_passphrase(b"pass", &small([1; 16])).unwrap();
        assert_ne!(
            a,
            derive_key_from_passphrase(b"pass", &small([2; 16])).unwrap()
        );
        assert_ne!(
            a,
            derive_key_from_passphrase(b"pasS", &small([1; 16])).unwrap()
        );
        assert_ne!(a, derive_key_from_passphrase(b"", &small([1; 16])).unwrap());
    }

    #[test]
    fn out_of_range_params_are_refused() {
        let base = small([0; 16]);
        let cases = [
            KdfParams {
                m_cost_kib: 0,
                ..base.clone()
            },
            KdfParams {
                m_cost_kib: 7,
                ..base.clone()
            },
            KdfParams {
                m_cost_kib: KdfParams::MAX_M_COST_KIB + 1,
                ..base.clone()
            },
            KdfParams {
                m_cost_kib: u32::MAX,
                ..base.clone()
            },
            KdfParams {
                t_cost: 0,
                ..base.clone()
            },
            KdfParams {
                t_cost: 17,
                ..base.clone()
            },
            KdfParams {
                t_cost: u32::MAX,
                ..base.clone()
            },
            KdfParams {
                p_cost: 0,
                ..base.clone()
            },
            KdfParams {
                p_cost: 9,
                ..base.clone()
            },
            KdfParams {
                p_cost: u32::MAX,
                ..base.clone()
            },
            // 8 lanes need at least 64 KiB.
            KdfParams {
                m_cost_kib: 63,
                p_cost: 8,
                ..base.clone()
            },
        ];
        for params in cases {
            let result = derive_key_from_passphrase(b"pass", &params);
            assert!(
                matches!(result, Err(CryptoError::Kdf(_))),
                "{params:?} was accepted"
            );
        }
        let edge = KdfParams {
            m_cost_kib: 64,
            p_cost: 8,
            ..base
        };
        assert!(derive_key_from_passphrase(b"pass", &edge).is_ok());
    }

    #[test]
    fn subkeys_are_separated() {
        let key = Secret::from_bytes([4; 32]);
        let a = derive_subkey(&key, "store", b"");
        assert_eq!(a, derive_subkey(&key, "store", b""));
        assert_ne!(a, derive_subkey(&key, "stor", b""));
        assert_ne!(a, derive_subkey(&key, "store", b"session 1"));
        assert_ne!(a, derive_subkey(&Secret::from_bytes([5; 32]), "store", b""));
        assert_ne!(a, key);
    }
}
