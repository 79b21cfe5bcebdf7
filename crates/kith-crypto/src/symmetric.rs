//! XChaCha20-Poly1305 for small secrets and store rows.
//!
//! XChaCha20's 24-byte nonce is long enough to draw at random for every message without a
//! realistic chance of repeating, which is what makes [`seal_random_nonce`] safe to use
//! without any counter state.

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use rand::CryptoRng;
use zeroize::Zeroizing;

use crate::{CryptoError, Secret};

/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// XChaCha20 nonce length.
const NONCE_LEN: usize = 24;

fn cipher(key: &Secret<32>) -> XChaCha20Poly1305 {
    // The cipher keeps its own copy of the key and zeroizes it on drop ("zeroize" feature).
    XChaCha20Poly1305::new(key.expose_secret().into())
}

/// XChaCha20-Poly1305 with a random nonce: returns nonce(24) || ciphertext || tag(16).
pub fn seal_random_nonce<R: CryptoRng + ?Sized>(
    key: &Secret<32>,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let sealed = seal_with_nonce(key, &nonce, aad, plaintext);
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal_random_nonce`] produced. Short or altered input is `DecryptFailed`.
pub fn open_random_nonce(
    key: &Secret<32>,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (nonce, rest) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(CryptoError::DecryptFailed)?;
    open_with_nonce(key, nonce, aad, rest)
}

/// XChaCha20-Poly1305 with a caller-chosen nonce that must never repeat under `key`:
/// returns ciphertext || tag(16). The store uses a per-session subkey and the row id.
pub fn seal_with_nonce(
    key: &Secret<32>,
    nonce: &[u8; 24],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    // The plaintext copy is encrypted in place; capacity is reserved so the buffer never
    // reallocates and leaves plaintext behind in freed memory.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buffer.extend_from_slice(plaintext);
    #[allow(
        clippy::expect_used,
        reason = "XChaCha20-Poly1305 fails only beyond 256 GiB of plaintext"
    )]
    cipher(key)
        .encrypt_in_place(nonce.into(), aad, &mut *buffer)
        .expect("plaintext within XChaCha20-Poly1305 limits");
    std::mem::take(&mut *buffer)
}

/// Opens what [`seal_with_nonce`] produced; the plaintext is zeroized when dropped.
pub fn open_with_nonce(
    key: &Secret<32>,
    nonce: &[u8; 24],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < TAG_LEN {
        return Err(CryptoError::DecryptFailed);
    }
    let mut buffer = Zeroizing::new(sealed.to_vec());
    cipher(key)
        .decrypt_in_place(nonce.into(), aad, &mut *buffer)
        .map_err(|_| CryptoError::DecryptFailed)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::HEXLOWER;

    fn hex(text: &str) -> Vec<u8> {
        HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    #[test]
    fn random_nonce_round_trip_and_tamper() {
        let mut rng = rand::rng();
        let key = Secret::random(&mut rng);
        let sealed = seal_random_nonce(&key, b"aad", b"secret note", &mut rng);
        assert_eq!(sealed.len(), NONCE_LEN + 11 + TAG_LEN);
        assert_eq!(
            &open_random_nonce(&key, b"aad", &sealed).unwrap()[..],
            b"secret note"
        );
        assert_eq!(
            open_random_nonce(&key, b"aaD", &sealed),
            Err(CryptoError::DecryptFailed)
        );
        let other = Secret::random(&mut rng);
        assert_eq!(
            open_random_nonce(&other, b"aad", &sealed),
            Err(CryptoError::DecryptFailed)
        );
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(open_random_nonce(&key, b"aad", &flipped).is_err());
        }
        for len in 0..sealed.len() {
            assert!(open_random_nonce(&key, b"aad", &sealed[..len]).is_err());
        }
        let again = seal_random_nonce(&key, b"aad", b"secret note", &mut rng);
        assert_ne!(sealed, again, "nonces must differ");
    }

    #[test]
    fn chosen_nonce_round_trip() {
        let key = Secret::from_bytes([3; 32]);
        let sealed = seal_with_nonce(&key, &[1; 24], b"row 7", b"");
        assert_eq!(sealed.len(), TAG_LEN);
        assert!(
            open_with_nonce(&key, &[1; 24], b"row 7", &sealed)
                .unwrap()
                .is_empty()
        );
        assert!(open_with_nonce(&key, &[2; 24], b"row 7", &sealed).is_err());
        assert!(open_with_nonce(&key, &[1; 24], b"row 8", &sealed).is_err());
        assert!(open_with_nonce(&key, &[1; 24], b"row 7", &sealed[1..]).is_err());
        assert!(open_with_nonce(&key, &[1; 24], b"row 7", &[]).is_err());
    }

    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1: our AEAD is standard XChaCha20-Poly1305.
    #[test]
    fn xchacha20poly1305_draft_vector() {
        let plaintext = concat!(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for ",
            "the future, sunscreen would be it."
        );
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let key = Secret::from_bytes(
            hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap(),
        );
        let nonce: [u8; 24] = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .unwrap();
        let expected = hex(concat!(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb",
            "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452",
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9",
            "21f9664c97637da9768812f615c68b13b52e",
            "c0875924c1c7987947deafd8780acf49"
        ));
        let sealed = seal_with_nonce(&key, &nonce, &aad, plaintext.as_bytes());
        assert_eq!(sealed, expected);
        assert_eq!(
            &open_with_nonce(&key, &nonce, &aad, &sealed).unwrap()[..],
            plaintext.as_bytes()
        );
    }
}
