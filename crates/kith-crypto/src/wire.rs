//! Bounded reading and LEB128 varints, shared by every binary decoder of untrusted bytes
//! (envelopes, invite codes, sync messages): one implementation to get right and to fuzz.
//!
//! Varints are unsigned LEB128, minimal (no trailing zero groups), at most
//! [`MAX_VARINT_LEN`] bytes and no bits beyond 64, so each value has exactly one encoding
//! and hashes over encodings are unambiguous.

/// Longest varint: ten 7-bit groups hold 64 bits.
pub const MAX_VARINT_LEN: usize = 10;

/// Appends `value` as a minimal LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over untrusted bytes; every read is bounds-checked and failures are reported
/// through the decoder's own error type, made by `error` from a short reason.
#[derive(Clone, Copy)]
pub struct Reader<'a, E> {
    /// What is left to read.
    pub rest: &'a [u8],
    error: fn(&'static str) -> E,
}

impl<E> std::fmt::Debug for Reader<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("left", &self.rest.len())
            .finish()
    }
}

impl<'a, E> Reader<'a, E> {
    /// Reads `bytes`; `error` turns a reason into the decoder's error.
    pub fn new(bytes: &'a [u8], error: fn(&'static str) -> E) -> Self {
        Reader { rest: bytes, error }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], E> {
        let (taken, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or((self.error)("truncated"))?;
        self.rest = rest;
        Ok(taken)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], E> {
        let (taken, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or((self.error)("truncated"))?;
        self.rest = rest;
        Ok(*taken)
    }

    /// A minimal LEB128 varint (see the module docs).
    pub fn varint(&mut self) -> Result<u64, E> {
        let mut value = 0u64;
        for (index, &byte) in self.rest.iter().enumerate().take(MAX_VARINT_LEN) {
            if index == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err((self.error)("varint overflows u64"));
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                if byte == 0 && index > 0 {
                    return Err((self.error)("varint is not minimal"));
                }
                self.take(index + 1)?;
                return Ok(value);
            }
        }
        Err((self.error)("truncated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<u64, &'static str> {
        let mut reader = Reader::new(bytes, |reason| reason);
        let value = reader.varint()?;
        if reader.rest.is_empty() {
            Ok(value)
        } else {
            Err("trailing")
        }
    }

    #[test]
    fn varints_round_trip_and_refuse_other_spellings() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert!(out.len() <= MAX_VARINT_LEN);
            assert_eq!(read(&out), Ok(value));
        }
        assert_eq!(read(&[0x80, 0x00]), Err("varint is not minimal"));
        assert_eq!(read(&[0xff, 0x80, 0x00]), Err("varint is not minimal"));
        assert_eq!(read(&[0x80; 11]), Err("varint overflows u64"));
        assert_eq!(
            read(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()),
            Err("varint overflows u64")
        );
        assert_eq!(read(&[0x80]), Err("truncated"));
        assert_eq!(read(&[]), Err("truncated"));
    }

    #[test]
    fn reads_are_bounded() {
        let mut reader = Reader::new(&[1, 2, 3], |reason| reason);
        assert_eq!(reader.array::<2>(), Ok([1, 2]));
        assert_eq!(reader.take(2), Err("truncated"));
        assert_eq!(reader.take(1), Ok(&[3][..]));
        assert_eq!(reader.array::<1>(), Err("truncated"));
    }
}
