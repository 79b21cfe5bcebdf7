//! Secret bytes and circle epoch keys.

use std::fmt;

use rand::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes: zeroized on drop, never printed, compared in constant time.
///
/// Copies are explicit (`Clone`) so that every copy is zeroized too; there is no `Display`
/// and `Debug` prints `Secret(***)`, so a secret cannot leak through logs by accident.
pub struct Secret<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Secret<N> {
    /// Takes ownership of `bytes`. The caller's own copies (if any) are its to zeroize.
    pub fn from_bytes(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Fresh secret from `rng`, filled in place so no unzeroized copy is left behind.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Self([0u8; N]);
        rng.fill_bytes(&mut secret.0);
        secret
    }

    /// Only for sealing the secret into storage; the name makes every use visible in review.
    pub fn expose_secret(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Clone for Secret<N> {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<const N: usize> Zeroize for Secret<N> {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<const N: usize> ZeroizeOnDrop for Secret<N> {}

impl<const N: usize> ConstantTimeEq for Secret<N> {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Constant time, so comparing keys or MACs leaks nothing through timing.
impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

/// One epoch of a circle's symmetric key.
///
/// Envelopes name their epoch; a removed member never receives the keys of later epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochKey(pub Secret<32>);

impl EpochKey {
    /// Fresh random epoch key, for a new circle or after a removal.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(Secret::random(rng))
    }

    /// A public commitment to this key as epoch `epoch` of `circle`, published beside its
    /// wraps: a member handed some other key under this epoch (by a careless or hostile
    /// wrapper) sees that it does not match, and never writes with it. HKDF-SHA256 of the
    /// key, so it reveals nothing of it.
    pub fn commitment(&self, circle: &crate::CircleId, epoch: u32) -> [u8; 32] {
        let mut salt = Vec::with_capacity(20);
        salt.extend_from_slice(&circle.0);
        salt.extend_from_slice(&epoch.to_be_bytes());
        *crate::derive_subkey(&self.0, "epoch-commitment/v1", &salt).expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_bytes() {
        let secret = Secret::from_bytes([0xab; 32]);
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", EpochKey(secret)), "EpochKey(Secret(***))");
    }

    #[test]
    fn commitments_differ_by_key_circle_and_epoch() {
        let key = EpochKey(Secret::from_bytes([1; 32]));
        let other = EpochKey(Secret::from_bytes([2; 32]));
        let circle = crate::CircleId([3; 16]);
        let c = key.commitment(&circle, 7);
        assert_eq!(c, key.commitment(&circle, 7));
        assert_ne!(c, other.commitment(&circle, 7));
        assert_ne!(c, key.commitment(&circle, 8));
        assert_ne!(c, key.commitment(&crate::CircleId([4; 16]), 7));
        assert_ne!(&c, key.0.expose_secret());
    }

    #[test]
    fn equality_and_clone() {
        let a = Secret::from_bytes([1u8; 32]);
        let mut b = a.clone();
        assert_eq!(a, b);
        b.zeroize();
        assert_ne!(a, b);
        assert_eq!(b.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn random_differs() {
        let mut rng = rand::rng();
        assert_ne!(
            Secret::<32>::random(&mut rng),
            Secret::<32>::random(&mut rng)
        );
    }
}
