//! Unit tests of the state machine: one test per outcome, batches, and the engine.

use std::collections::{BTreeMap, BTreeSet};

use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, Hash, MemberId};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::*;

struct Author {
    id: DeviceIdentity,
    prev: Hash,
    seq: u64,
}

struct Fixture {
    rng: StdRng,
    key: EpochKey,
    circle: CircleId,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(11);
        Fixture {
            key: EpochKey::generate(&mut rng),
            circle: CircleId([5; 16]),
            rng,
        }
    }

    fn author(&mut self) -> Author {
        Author {
            id: DeviceIdentity::generate(&mut self.rng),
            prev: [0; 32],
            seq: 0,
        }
    }

    /// The author's next envelope in the chain.
    fn next(&mut self, a: &mut Author) -> Envelope {
        self.next_sized(a, 4)
    }

    fn next_sized(&mut self, a: &mut Author, len: usize) -> Envelope {
        a.seq += 1;
        let env = Envelope::seal(
            &a.id,
            &self.key,
            self.circle,
            a.seq,
            a.prev,
            0,
            &vec![7; len],
            &mut self.rng,
        )
        .unwrap();
        a.prev = env.hash();
        env
    }

    /// Another envelope at the author's current seq (an equivocation).
    fn fork(&mut self, a: &Author, seq: u64, prev: Hash) -> Envelope {
        Envelope::seal(
            &a.id,
            &self.key,
            self.circle,
            seq,
            prev,
            0,
            b"other",
            &mut self.rng,
        )
        .unwrap()
    }
}

#[derive(Default)]
struct Store(BTreeMap<(MemberId, u64), Envelope>);

impl Store {
    fn put(&mut self, envs: &[Envelope]) {
        for env in envs {
            self.0
                .insert((env.header.author, env.header.seq), env.clone());
        }
    }
}

impl EnvelopeSource for Store {
    fn envelope(&self, _: &CircleId, author: &MemberId, seq: u64) -> Option<Envelope> {
        self.0.get(&(*author, seq)).cloned()
    }
}

fn all(_: &MemberId) -> bool {
    true
}

fn seqs(received: &Received) -> Vec<u64> {
    received.accepted.iter().map(|e| e.header.seq).collect()
}

#[test]
fn accepts_in_order_and_ignores_duplicates() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let envs: Vec<_> = (0..3).map(|_| f.next(&mut ann)).collect();
    let mut state = CircleSync::new(f.circle);
    let received = state.receive(envs.clone(), all);
    assert_eq!(seqs(&received), [1, 2, 3]);
    assert!(
        received
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. }))
    );
    let head = state.head(&ann.id.member_id()).unwrap();
    assert_eq!((head.seq, head.hash), (3, envs[2].hash()));

    let again = state.receive(envs.clone(), all);
    assert!(again.accepted.is_empty());
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Duplicate { .. }))
    );
    assert_eq!(again.offences().count(), 0);
    assert_eq!(state.len(), 3);
}

#[test]
fn equivocation_is_kept_as_evidence_and_not_accepted() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let first = f.next(&mut ann);
    let second = f.next(&mut ann);
    let twin = f.fork(&ann, 2, first.hash());
    let mut state = CircleSync::new(f.circle);
    state.receive(vec![first, second.clone()], all);
    let received = state.receive(vec![twin.clone()], all);
    assert!(received.accepted.is_empty());
    assert_eq!(
        received.outcomes,
        [Outcome::Equivocation {
            author: ann.id.member_id(),
            seq: 2,
            first_hash: second.hash(),
            second: Box::new(twin.clone()),
        }]
    );
    assert_eq!(received.offences().count(), 0);
    assert_eq!(state.evidence().len(), 1);
    assert_eq!(state.evidence()[0].kind, EvidenceKind::SameSeq);
    assert_eq!(state.evidence()[0].second, twin);
    // Seen again: reported again, kept once.
    state.receive(vec![twin], all);
    assert_eq!(state.evidence().len(), 1);
    assert_eq!(state.head(&ann.id.member_id()).unwrap().hash, second.hash());
}

#[test]
fn a_next_envelope_on_another_branch_is_fork_evidence() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let first = f.next(&mut ann);
    let twin = f.fork(&ann, 1, [0; 32]);
    let after_twin = f.fork(&ann, 2, twin.hash());
    let mut state = CircleSync::new(f.circle);
    state.receive(vec![first.clone()], all);
    let received = state.receive(vec![after_twin.clone()], all);
    assert_eq!(
        received.outcomes,
        [Outcome::Forked {
            author: ann.id.member_id(),
            seq: 2,
            held_prev: first.hash(),
        }]
    );
    assert_eq!(received.offences().count(), 0);
    assert_eq!(state.evidence()[0].kind, EvidenceKind::ConflictingPrev);
    assert_eq!(state.head(&ann.id.member_id()).unwrap().seq, 1);
}

#[test]
fn gaps_wait_and_are_released_in_order() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let envs: Vec<_> = (0..5).map(|_| f.next(&mut ann)).collect();
    let mut state = CircleSync::new(f.circle);
    let received = state.receive(vec![envs[4].clone(), envs[2].clone(), envs[3].clone()], all);
    assert!(received.accepted.is_empty());
    assert!(received.waiting_for_gap());
    assert_eq!(state.pending_len(), 3);
    // A pending duplicate is a duplicate.
    let dup = state.receive(vec![envs[3].clone()], all);
    assert!(matches!(
        dup.outcomes[..],
        [Outcome::Duplicate { seq: 4, .. }]
    ));
    assert_eq!(seqs(&state.receive(vec![envs[0].clone()], all)), [1]);
    let received = state.receive(vec![envs[1].clone()], all);
    assert_eq!(seqs(&received), [2, 3, 4, 5]);
    assert_eq!(state.pending_len(), 0);
    assert_eq!(state.head(&ann.id.member_id()).unwrap().seq, 5);
}

#[test]
fn unknown_authors_wait_for_the_roster() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let mut bob = f.author();
    let envs = vec![f.next(&mut bob), f.next(&mut ann), f.next(&mut bob)];
    let bob_id = bob.id.member_id();
    let ann_id = ann.id.member_id();
    let mut state = CircleSync::new(f.circle);
    let received = state.receive(envs, |m| *m == ann_id);
    assert_eq!(seqs(&received), [1]);
    assert!(matches!(
        received.outcomes[..],
        [
            Outcome::PendingUnknownAuthor { seq: 1, .. },
            Outcome::Accepted { .. },
            Outcome::PendingUnknownAuthor { seq: 2, .. }
        ]
    ));
    assert_eq!(received.offences().count(), 0);
    // Still unknown: nothing happens.
    assert!(state.roster_changed(|m| *m == ann_id).accepted.is_empty());
    let released = state.roster_changed(all);
    assert_eq!(seqs(&released), [1, 2]);
    assert!(released.accepted.iter().all(|e| e.header.author == bob_id));
    assert_eq!(state.pending_len(), 0);
}

#[test]
fn bad_signatures_wrong_circles_and_oversized_envelopes_are_offences() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let good = f.next(&mut ann);
    let mut forged = good.clone();
    forged.ciphertext[0] ^= 1;
    let mut elsewhere = f.author();
    f.circle = CircleId([6; 16]);
    let foreign = f.next(&mut elsewhere);
    f.circle = CircleId([5; 16]);
    let mut huge = good.clone();
    huge.ciphertext = vec![0; kith_crypto::MAX_ENVELOPE_LEN];
    let mut zero = good.clone();
    zero.header.seq = 0;

    let mut state = CircleSync::new(f.circle);
    let received = state.receive(vec![forged, foreign, huge, zero], all);
    assert_eq!(
        received.offences().collect::<Vec<_>>(),
        [
            Offence::BadSignature,
            Offence::WrongCircle,
            Offence::Oversized,
            Offence::Malformed
        ]
    );
    assert!(state.is_empty());
    assert_eq!(state.pending_len(), 0);
    // The genuine one still goes in after all that.
    assert_eq!(seqs(&state.receive(vec![good], all)), [1]);
}

#[test]
fn pending_buffer_is_bounded_and_keeps_the_lowest_seqs() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let envs: Vec<_> = (0..MAX_PENDING_PER_AUTHOR + 3)
        .map(|_| f.next(&mut ann))
        .collect();
    let mut state = CircleSync::new(f.circle);
    // Everything but seq 1, highest first: the buffer ends up with the lowest seqs.
    let received = state.receive(envs[1..].iter().rev().cloned().collect(), all);
    assert_eq!(state.pending_len(), MAX_PENDING_PER_AUTHOR);
    // The two highest were held, then evicted for lower ones.
    assert_eq!(received.outcomes.len(), envs.len() - 1);
    let released = state.receive(vec![envs[0].clone()], all);
    assert_eq!(released.accepted.len(), MAX_PENDING_PER_AUTHOR + 1);
    // The dropped ones come again later and fit.
    let rest = state.receive(envs[MAX_PENDING_PER_AUTHOR + 1..].to_vec(), all);
    assert_eq!(rest.accepted.len(), 2);
    assert_eq!(state.len(), envs.len());

    // Unknown authors have their own, smaller, bound.
    let mut state = CircleSync::new(f.circle);
    let strangers: Vec<Envelope> = (0..MAX_PENDING_UNKNOWN + 1)
        .map(|_| {
            let mut a = f.author();
            f.next(&mut a)
        })
        .collect();
    let received = state.receive(strangers, |_| false);
    assert_eq!(state.pending_len(), MAX_PENDING_UNKNOWN);
    assert!(matches!(
        received.outcomes.last(),
        Some(Outcome::PendingFull { .. })
    ));
}

#[test]
fn local_append_and_restore_check_the_chain() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let one = f.next(&mut ann);
    let two = f.next(&mut ann);
    let mut state = CircleSync::new(f.circle);
    assert_eq!(
        state.restore(&two),
        Err(SyncError::NotNext {
            author: ann.id.member_id(),
            seq: 2
        })
    );
    state.restore(&one).unwrap();
    let push = state.local_append(two.clone()).unwrap();
    assert_eq!(
        push,
        Message::Envelopes {
            circle: f.circle,
            more: false,
            envelopes: vec![two.clone()]
        }
    );
    assert!(state.local_append(two).is_err());
    let mut other = CircleSync::new(CircleId([1; 16]));
    assert_eq!(other.restore(&one), Err(SyncError::WrongCircle));
}

#[test]
fn answers_oldest_first_interleaved_and_bounded() {
    let mut f = Fixture::new();
    let mut authors: Vec<Author> = (0..3).map(|_| f.author()).collect();
    let mut store = Store::default();
    let mut state = CircleSync::new(f.circle);
    // 3 authors × 100 envelopes: more than one batch of MAX_BATCH_ENVELOPES.
    for _ in 0..100 {
        for a in authors.iter_mut() {
            let env = f.next(a);
            store.put(std::slice::from_ref(&env));
            state.local_append(env).unwrap();
        }
    }
    let mut peer = CircleSync::new(f.circle);
    let Some(Message::Envelopes {
        more, envelopes, ..
    }) = state.answer(&[], &store)
    else {
        panic!("expected envelopes");
    };
    assert!(more);
    assert_eq!(envelopes.len(), MAX_BATCH_ENVELOPES);
    // Round robin: the first three are each author's seq 1, then seq 2...
    let firsts: BTreeSet<_> = envelopes[..3].iter().map(|e| e.header.author).collect();
    assert_eq!(firsts.len(), 3);
    assert!(envelopes[..3].iter().all(|e| e.header.seq == 1));
    assert!(envelopes[3..6].iter().all(|e| e.header.seq == 2));
    let received = peer.receive(envelopes, all);
    assert_eq!(received.accepted.len(), MAX_BATCH_ENVELOPES);
    // The next vector asks for the rest.
    let Some(Message::Envelopes {
        more, envelopes, ..
    }) = state.answer(&peer.heads(), &store)
    else {
        panic!("expected envelopes");
    };
    assert!(!more);
    assert_eq!(envelopes.len(), 300 - MAX_BATCH_ENVELOPES);
    peer.receive(envelopes, all);
    assert_eq!(peer.heads(), state.heads());
    assert_eq!(state.answer(&peer.heads(), &store), None);
}

#[test]
fn batches_respect_the_byte_limit() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let mut store = Store::default();
    let mut state = CircleSync::new(f.circle);
    for _ in 0..20 {
        let env = f.next_sized(&mut ann, 60_000);
        store.put(std::slice::from_ref(&env));
        state.local_append(env).unwrap();
    }
    let answer = state.answer(&[], &store).unwrap();
    let Message::Envelopes {
        more, envelopes, ..
    } = &answer
    else {
        panic!("expected envelopes");
    };
    assert!(*more);
    assert_eq!(
        envelopes.len(),
        MAX_BATCH_BYTES / envelopes[0].encode().len()
    );
    assert!(answer.encode().unwrap().len() <= MAX_MESSAGE_LEN);
}

#[test]
fn answers_send_fork_evidence_instead_of_extending_another_branch() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let one = f.next(&mut ann);
    let two = f.next(&mut ann);
    let twin = f.fork(&ann, 1, [0; 32]);
    let mut store = Store::default();
    store.put(&[one.clone(), two.clone()]);
    let mut state = CircleSync::new(f.circle);
    state.restore(&one).unwrap();
    state.restore(&two).unwrap();
    let theirs = [Head {
        author: ann.id.member_id(),
        seq: 1,
        hash: twin.hash(),
    }];
    assert_eq!(
        state.answer(&theirs, &store),
        Some(Message::Envelopes {
            circle: f.circle,
            more: false,
            envelopes: vec![one.clone()]
        })
    );
    // The peer on the other branch records the evidence.
    let mut peer = CircleSync::new(f.circle);
    peer.receive(vec![twin], all);
    peer.receive(vec![one], all);
    assert_eq!(peer.evidence().len(), 1);
    // A source that lost an envelope ends that author's part of the batch.
    let empty = Store::default();
    assert_eq!(state.answer(&[], &empty), None);
}

#[test]
fn engine_counts_offences_and_disconnects() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let good = f.next(&mut ann);
    let store = Store::default();
    let mut engine = SyncEngine::<&str>::new();
    engine.join(f.circle);
    let everyone = |_: &CircleId, _: &MemberId| true;

    // Duplicates and unknown authors are not offences.
    let push = Message::Envelopes {
        circle: f.circle,
        more: false,
        envelopes: vec![good.clone()],
    }
    .encode()
    .unwrap();
    for _ in 0..10 {
        let handled = engine.handle(&"bob", &push, 0, &store, everyone);
        assert_eq!(handled.offence, None);
    }
    let handled = engine.handle(&"cat", &push, 0, &store, |_, _| false);
    assert_eq!(handled.offence, None);
    assert!(!engine.should_disconnect(&"bob", 0));

    let unknown = CircleSync::new(CircleId([9; 16]))
        .vector()
        .encode()
        .unwrap();
    let handled = engine.handle(&"eve", &unknown, 0, &store, everyone);
    assert_eq!(handled.offence, Some(Offence::UnknownCircle));
    let handled = engine.handle(&"eve", b"garbage", 1, &store, everyone);
    assert_eq!(handled.offence, Some(Offence::Malformed));
    assert!(handled.error.is_some());
    let handled = engine.handle(&"eve", &vec![0; MAX_MESSAGE_LEN + 1], 2, &store, everyone);
    assert_eq!(handled.offence, Some(Offence::Oversized));
    let mut forged = good.clone();
    forged.signature[0] ^= 1;
    let bad = Message::Envelopes {
        circle: f.circle,
        more: false,
        envelopes: vec![forged.clone(), forged],
    }
    .encode()
    .unwrap();
    let handled = engine.handle(&"eve", &bad, 3, &store, everyone);
    assert_eq!(handled.offence, Some(Offence::BadSignature));
    assert!(!handled.disconnect);
    let handled = engine.handle(&"eve", b"", 4, &store, everyone);
    assert!(handled.disconnect);
    assert!(engine.should_disconnect(&"eve", 4));
    assert!(!engine.should_disconnect(&"eve", 4 + OFFENCE_WINDOW_MS + 1));
    assert!(!engine.should_disconnect(&"bob", 4));
}

#[test]
fn engine_asks_for_more_and_for_gaps() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let envs: Vec<_> = (0..3).map(|_| f.next(&mut ann)).collect();
    let store = Store::default();
    let mut engine = SyncEngine::<u8>::new();
    engine.join(f.circle);
    let everyone = |_: &CircleId, _: &MemberId| true;
    let msg = |more, envelopes: Vec<Envelope>| {
        Message::Envelopes {
            circle: f.circle,
            more,
            envelopes,
        }
        .encode()
        .unwrap()
    };
    // A push ahead of a gap: ask at once.
    let handled = engine.handle(&1, &msg(false, vec![envs[2].clone()]), 0, &store, everyone);
    assert!(matches!(handled.replies[..], [Message::Vector { .. }]));
    // More follows and progress was made: ask again.
    let handled = engine.handle(&1, &msg(true, vec![envs[0].clone()]), 0, &store, everyone);
    assert_eq!(handled.replies.len(), 1);
    // More follows but nothing new: do not ask (no loop).
    let handled = engine.handle(&1, &msg(true, vec![envs[0].clone()]), 0, &store, everyone);
    assert!(handled.replies.is_empty());
    // Plain push, in order: nothing to say.
    let handled = engine.handle(&1, &msg(false, vec![envs[1].clone()]), 0, &store, everyone);
    assert!(handled.replies.is_empty());
    assert_eq!(handled.accepted.len(), 2);
    assert_eq!(engine.circle(&f.circle).unwrap().len(), 3);
}

#[test]
fn a_circle_has_at_most_max_vector_authors() {
    let mut f = Fixture::new();
    let mut state = CircleSync::new(f.circle);
    for _ in 0..MAX_VECTOR_AUTHORS {
        let mut a = f.author();
        let env = f.next(&mut a);
        state.restore(&env).unwrap();
    }
    let mut late = f.author();
    let env = f.next(&mut late);
    let received = state.receive(vec![env.clone()], all);
    assert_eq!(
        received.outcomes,
        [Outcome::TooManyAuthors {
            author: late.id.member_id()
        }]
    );
    assert_eq!(state.local_append(env), Err(SyncError::TooManyAuthors));
    // The largest vector still encodes and decodes.
    let vector = state.vector();
    assert_eq!(Message::decode(&vector.encode().unwrap()).unwrap(), vector);
}

#[test]
fn engine_releases_unknown_authors_when_the_roster_grows() {
    let mut f = Fixture::new();
    let mut bob = f.author();
    let envs: Vec<_> = (0..2).map(|_| f.next(&mut bob)).collect();
    let store = Store::default();
    let mut engine = SyncEngine::<u8>::new();
    engine.join(f.circle);
    let push = Message::Envelopes {
        circle: f.circle,
        more: false,
        envelopes: envs,
    }
    .encode()
    .unwrap();
    let handled = engine.handle(&1, &push, 0, &store, |_, _| false);
    assert!(handled.accepted.is_empty());
    assert_eq!(handled.offence, None);
    assert_eq!(engine.circle(&f.circle).unwrap().pending_len(), 2);
    let released = engine.roster_changed(&f.circle, all);
    assert_eq!(seqs(&released), [1, 2]);
    assert!(
        engine
            .roster_changed(&CircleId([0; 16]), all)
            .accepted
            .is_empty()
    );
    assert!(engine.leave(&f.circle).is_some());
    assert_eq!(
        engine.handle(&1, &push, 0, &store, |_, _| true).offence,
        Some(Offence::UnknownCircle)
    );
}

#[test]
fn a_continuation_is_the_vector_held_after_accepting_the_batch() {
    let mut f = Fixture::new();
    let mut authors: Vec<Author> = (0..3).map(|_| f.author()).collect();
    let mut store = Store::default();
    let mut state = CircleSync::new(f.circle);
    for _ in 0..200 {
        for a in authors.iter_mut() {
            let env = f.next(a);
            store.put(std::slice::from_ref(&env));
            state.local_append(env).unwrap();
        }
    }
    // The peer holds a little of one author already.
    let mut peer = CircleSync::new(f.circle);
    for seq in 1..=5 {
        let env = store.0[&(authors[0].id.member_id(), seq)].clone();
        peer.restore(&env).unwrap();
    }
    let mut asked = peer.vector();
    let mut rounds = 0;
    while let Some(answer) = state.answer(
        match &asked {
            Message::Vector { heads, .. } => heads,
            Message::Envelopes { .. } => panic!("asked with envelopes"),
        },
        &store,
    ) {
        rounds += 1;
        let next = asked.continuation(&answer);
        let Message::Envelopes {
            more, envelopes, ..
        } = answer.clone()
        else {
            panic!("expected envelopes");
        };
        peer.receive(envelopes, all);
        match next {
            Some(next) => {
                assert!(more);
                assert_eq!(next, peer.vector());
                asked = next;
            }
            None => {
                assert!(!more);
                break;
            }
        }
    }
    assert!(rounds > 2);
    assert_eq!(peer.heads(), state.heads());
    // Only a vector answered by a batch with more to come continues.
    let done = Message::Envelopes {
        circle: f.circle,
        more: false,
        envelopes: vec![store.0[&(authors[1].id.member_id(), 1)].clone()],
    };
    assert_eq!(CircleSync::new(f.circle).vector().continuation(&done), None);
    assert_eq!(done.continuation(&done), None);
}

#[test]
fn a_continued_batch_does_not_ask_again_unless_something_is_missing() {
    let mut f = Fixture::new();
    let mut ann = f.author();
    let envs: Vec<_> = (0..4).map(|_| f.next(&mut ann)).collect();
    let store = Store::default();
    let mut engine = SyncEngine::<u8>::new();
    engine.join(f.circle);
    let everyone = |_: &CircleId, _: &MemberId| true;
    let batch = |envelopes: Vec<Envelope>| {
        let message = Message::Envelopes {
            circle: f.circle,
            more: true,
            envelopes,
        };
        let mut checked = Prechecked::check(Ok(message));
        checked.mark_continued();
        checked
    };
    // In order: the continuation already asked for the rest.
    let handled = engine.handle_prechecked(&1, batch(envs[..2].to_vec()), 0, &store, everyone);
    assert_eq!(handled.accepted.len(), 2);
    assert!(handled.replies.is_empty());
    // Had the first batch been refused, the continued one leaves a gap: ask with the real
    // vector.
    let mut other = SyncEngine::<u8>::new();
    other.join(f.circle);
    let handled = other.handle_prechecked(&1, batch(envs[2..].to_vec()), 0, &store, everyone);
    assert!(handled.accepted.is_empty());
    let [Message::Vector { heads, .. }] = &handled.replies[..] else {
        panic!("expected a vector, got {:?}", handled.replies);
    };
    assert!(heads.is_empty());
}
