//! A sync message as it arrives from a peer: `kith_sync::Message::decode` (bounded and
//! canonical: an accepted input re-encodes to itself), then the same bytes through a
//! `SyncEngine` that syncs the message's circle, twice (the second time everything is a
//! duplicate). Must never panic.
#![no_main]

use kith_crypto::{CircleId, Envelope, MemberId};
use kith_sync::{EnvelopeSource, Message, SyncEngine};
use libfuzzer_sys::fuzz_target;

struct NoEnvelopes;

impl EnvelopeSource for NoEnvelopes {
    fn envelope(&self, _: &CircleId, _: &MemberId, _: u64) -> Option<Envelope> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    if let Ok(message) = &decoded {
        assert_eq!(
            message.encode().as_deref(),
            Ok(data),
            "accepted a non-canonical encoding"
        );
    }
    let circle = decoded
        .as_ref()
        .map(Message::circle)
        .unwrap_or(CircleId([3; 16]));
    let mut engine = SyncEngine::<u8>::new();
    engine.join(circle);
    // Everyone is a member except authors whose key starts with 0xff, so both paths run.
    let is_member = |_: &CircleId, author: &MemberId| author.0[0] != 0xff;
    for now in [0, 1] {
        let handled = engine.handle(&1, data, now, &NoEnvelopes, is_member);
        for reply in &handled.replies {
            let bytes = reply.encode().expect("a reply the engine made encodes");
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(reply));
        }
    }
    let _ = engine.hellos();
});
