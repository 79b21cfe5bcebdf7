//! The plaintext inside an envelope: one tag byte, then the body.

use crate::CoreError;

const TAG_CHANGE: u8 = 1;

/// What an envelope's plaintext carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An automerge change to the circle document.
    Change(Vec<u8>),
}

impl Payload {
    /// One tag byte then the body. The tag leaves room for control operations later.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Change(body) => {
                let mut out = Vec::with_capacity(1 + body.len());
                out.push(TAG_CHANGE);
                out.extend_from_slice(body);
                out
            }
        }
    }

    /// Refuses empty input, unknown tags and empty bodies. The body itself is checked where
    /// it is used (`Circle::apply_changes`).
    pub fn decode(bytes: &[u8]) -> Result<Payload, CoreError> {
        match bytes.split_first() {
            None => Err(CoreError::Document("empty payload".into())),
            Some((&TAG_CHANGE, [])) => Err(CoreError::Document("empty change payload".into())),
            Some((&TAG_CHANGE, body)) => Ok(Payload::Change(body.to_vec())),
            Some((tag, _)) => Err(CoreError::Document(format!("unknown payload tag {tag}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Payload::Change(vec![1, 2, 3]);
        assert_eq!(p.encode(), vec![1, 1, 2, 3]);
        assert_eq!(Payload::decode(&p.encode()), Ok(p));
        assert!(matches!(Payload::decode(&[]), Err(CoreError::Document(_))));
        assert!(matches!(Payload::decode(&[1]), Err(CoreError::Document(_))));
        assert!(matches!(
            Payload::decode(&[0, 1]),
            Err(CoreError::Document(_))
        ));
        assert!(matches!(
            Payload::decode(&[2, 1]),
            Err(CoreError::Document(_))
        ));
    }
}
