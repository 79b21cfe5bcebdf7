//! Unit tests of circle life beyond asking and claiming: recurring slots, helper limits,
//! claim messages, expiry, thanks, offers, edits, nudges, quiet hours, naming members, the
//! races the standby order decides, private items sealed with a real keyring (kith-crypto),
//! and forged writes into the new places of the document.

use automerge::ObjType;
use automerge::transaction::Transactable;
use kith_crypto::DeviceIdentity;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::tests::{DAY, T0, deliver, iid, map_at, raw_edit};

const HOUR: i64 = 3_600_000;

#[path = "../tests/support/test_keyring.rs"]
mod test_keyring;
use test_keyring::TestKeyring;

/// A device identity from a seed: member ids that are real ed25519 keys, as private items
/// need.
fn identity(seed: u64) -> DeviceIdentity {
    DeviceIdentity::generate(&mut StdRng::seed_from_u64(seed))
}

/// Ann founds a circle and adds Bob, Cat and Dan; each has a circle loaded from those
/// changes and a keyring of their own.
struct Life {
    ann: Circle,
    bob: Circle,
    cat: Circle,
    dan: Circle,
    /// Member ids of Ann, Bob, Cat and Dan.
    a: String,
    b: String,
    c: String,
    d: String,
    people: Vec<DeviceIdentity>,
    /// Every change shared so far, in order.
    log: Vec<Vec<u8>>,
}

fn life() -> Life {
    let people: Vec<DeviceIdentity> = (1..=4).map(identity).collect();
    let ids: Vec<String> = people.iter().map(|p| p.member_id().to_string()).collect();
    let (mut founder, genesis) = Circle::found(&ids[0], "Ann", "Tuesday people", T0).unwrap();
    let mut log = vec![genesis];
    for (id, name) in ids[1..].iter().zip(["Bob", "Cat", "Dan"]) {
        log.push(founder.add_member(id, name, Role::Member, T0 + 1).unwrap());
    }
    let mut circles = ids
        .iter()
        .zip(&people)
        .enumerate()
        .map(|(n, (id, person))| {
            let mut circle = Circle::load(id, &log).unwrap();
            circle.set_keyring(TestKeyring::shared(person, 100 + n as u64));
            circle
        });
    let (ann, bob, cat, dan) = (
        circles.next().unwrap(),
        circles.next().unwrap(),
        circles.next().unwrap(),
        circles.next().unwrap(),
    );
    drop(circles);
    Life {
        ann,
        bob,
        cat,
        dan,
        a: ids[0].clone(),
        b: ids[1].clone(),
        c: ids[2].clone(),
        d: ids[3].clone(),
        people,
        log,
    }
}

impl Life {
    fn all(&self) -> [&Circle; 4] {
        [&self.ann, &self.bob, &self.cat, &self.dan]
    }

    fn everyone(&mut self) -> [&mut Circle; 4] {
        [&mut self.ann, &mut self.bob, &mut self.cat, &mut self.dan]
    }

    /// Delivers `changes` to every member (their own are already there) and logs them.
    fn share(&mut self, changes: &[Vec<u8>]) {
        self.log.extend(changes.iter().cloned());
        deliver(changes, &mut self.everyone());
    }

    /// Member `n` (0 = Ann) rebuilt from the log, with their keyring.
    fn fresh(&self, n: usize) -> Circle {
        let mut circle = Circle::load(&self.ids()[n], &self.log).unwrap();
        circle.set_keyring(TestKeyring::shared(&self.people[n], 999));
        circle
    }

    fn ids(&self) -> [String; 4] {
        [
            self.a.clone(),
            self.b.clone(),
            self.c.clone(),
            self.d.clone(),
        ]
    }

    /// Every member, and every member rebuilt from the log, shows the same `id`.
    fn same_everywhere(&self, id: &ItemId) -> ItemView {
        let item = self.ann.item(id.as_str()).unwrap();
        for (n, c) in self.all().into_iter().enumerate() {
            assert_eq!(c.item(id.as_str()).as_ref(), Some(&item), "member {n}");
            assert_eq!(
                self.fresh(n).item(id.as_str()),
                Some(item.clone()),
                "fresh {n}"
            );
        }
        item
    }
}

fn meals(title: &str, helpers: Option<u32>) -> NewRequest {
    NewRequest {
        kind: HelpKind::Meals,
        title: title.to_string(),
        needed_by: Some(T0 + 7 * DAY),
        helpers,
        ..NewRequest::default()
    }
}

fn recurring(title: &str, slots: Vec<i64>) -> NewRequest {
    NewRequest {
        kind: HelpKind::Childcare,
        title: title.to_string(),
        slots,
        ..NewRequest::default()
    }
}

fn soup_offer() -> NewOffer {
    NewOffer {
        kind: HelpKind::Meals,
        title: "Soup on Sundays".into(),
        details: Some("vegetarian".into()),
        when: Some("Sundays after 5".into()),
    }
}

fn claim(member: &str, at: i64, message: Option<&str>, standby: bool) -> ClaimView {
    ClaimView {
        member: member.to_string(),
        at,
        message: message.map(str::to_string),
        standby,
    }
}

fn holders(slot: &SlotView) -> (Option<&str>, Vec<&str>) {
    (
        slot.taken_by(),
        slot.claims
            .iter()
            .filter(|c| c.standby)
            .map(|c| c.member.as_str())
            .collect(),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn recurring_slots_are_claimed_one_by_one() {
    let mut l = life();
    let req = iid(1);
    // Given out of time order: slot ids still follow time.
    let times = vec![T0 + 3 * DAY, T0 + DAY, T0 + 2 * DAY];
    let asked = l
        .ann
        .ask(&req, &recurring("School run", times), T0)
        .unwrap();
    l.share(&[asked]);
    let item = l.same_everywhere(&req);
    let slots: Vec<(&str, i64)> = item.slots.iter().map(|s| (s.id.as_str(), s.at)).collect();
    assert_eq!(
        slots,
        vec![("1", T0 + DAY), ("2", T0 + 2 * DAY), ("3", T0 + 3 * DAY)]
    );
    assert_eq!(item.deadline(), Some(T0 + 3 * DAY));
    assert!(item.slots.iter().all(|s| s.taken_by().is_none()));
    assert_eq!(item.status, Some(RequestStatus::Open));

    // A slot must be named, must exist, and is not the asker's to take.
    let err = |e: CoreError| Err::<Vec<u8>, _>(e);
    assert_eq!(
        l.bob.claim(&req, T0 + 10),
        err(CoreError::NeedsSlot(req.to_string()))
    );
    assert_eq!(
        l.bob.claim_with(&req, Some("9"), None, T0 + 10),
        err(CoreError::UnknownSlot {
            id: req.to_string(),
            slot: "9".into()
        })
    );
    assert_eq!(
        l.ann.claim_with(&req, Some("1"), None, T0 + 10),
        err(CoreError::OwnRequest(req.to_string()))
    );

    let bob1 = l
        .bob
        .claim_with(&req, Some("1"), Some("I'll drive"), T0 + 10)
        .unwrap();
    l.share(&[bob1]);
    assert_eq!(
        l.cat.claim_with(&req, Some("1"), None, T0 + 11),
        err(CoreError::SlotTaken {
            id: req.to_string(),
            slot: "1".into()
        })
    );
    assert_eq!(
        l.bob.claim_with(&req, Some("1"), None, T0 + 11),
        err(CoreError::AlreadyClaimed(req.to_string()))
    );
    let cat2 = l.cat.claim_with(&req, Some("2"), None, T0 + 11).unwrap();
    let bob3 = l.bob.claim_with(&req, Some("3"), None, T0 + 12).unwrap();
    l.share(&[cat2, bob3]);
    let item = l.same_everywhere(&req);
    let taken: Vec<Option<&str>> = item.slots.iter().map(SlotView::taken_by).collect();
    assert_eq!(
        taken,
        vec![Some(l.b.as_str()), Some(l.c.as_str()), Some(l.b.as_str())]
    );
    assert_eq!(
        item.slots[0].claims,
        vec![claim(&l.b, T0 + 10, Some("I'll drive"), false)]
    );
    assert!(item.claims.is_empty());
    assert_eq!(item.status, Some(RequestStatus::Claimed));
    assert!(item.helped_by(&l.b) && item.helped_by(&l.c) && !item.helped_by(&l.d));

    // Bob holds two slots: letting go needs one named. Cat holds one: no need.
    assert_eq!(
        l.bob.unclaim(&req, T0 + 13),
        err(CoreError::NeedsSlot(req.to_string()))
    );
    assert_eq!(
        l.dan.unclaim_slot(&req, Some("1"), T0 + 13),
        err(CoreError::NotClaimed(req.to_string()))
    );
    assert_eq!(
        l.bob.unclaim_slot(&req, Some("2"), T0 + 13),
        err(CoreError::NotClaimed(req.to_string()))
    );
    let bob_off = l.bob.unclaim_slot(&req, Some("1"), T0 + 13).unwrap();
    let cat_off = l.cat.unclaim(&req, T0 + 14).unwrap();
    l.share(&[bob_off, cat_off]);
    let item = l.same_everywhere(&req);
    let taken: Vec<Option<&str>> = item.slots.iter().map(SlotView::taken_by).collect();
    assert_eq!(taken, vec![None, None, Some(l.b.as_str())]);
    assert_eq!(item.status, Some(RequestStatus::Claimed));

    // Once slot 1 has passed it takes no claims; the later ones still do.
    let late = T0 + DAY + HOUR;
    assert_eq!(
        l.dan.claim_with(&req, Some("1"), None, late),
        err(CoreError::RequestClosed {
            id: format!("{req} slot 1"),
            status: "past"
        })
    );
    let dan2 = l.dan.claim_with(&req, Some("2"), None, late).unwrap();
    l.share(&[dan2]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.slots[1].taken_by(), Some(l.d.as_str()));
    assert_eq!(item.status_at(late), Some(RequestStatus::Claimed));
    assert_eq!(item.status_at(T0 + 3 * DAY), Some(RequestStatus::Claimed));
    assert_eq!(
        item.status_at(T0 + 3 * DAY + 1),
        Some(RequestStatus::Expired)
    );

    // The terms of a recurring need.
    let mut both = recurring("x", vec![T0 + DAY]);
    both.helpers = Some(2);
    assert!(matches!(
        l.ann.ask(&iid(2), &both, T0),
        Err(CoreError::Invalid {
            what: "helpers",
            ..
        })
    ));
    let many = recurring("x", (0..=MAX_SLOTS as i64).map(|n| T0 + n * HOUR).collect());
    assert!(matches!(
        l.ann.ask(&iid(2), &many, T0),
        Err(CoreError::Invalid { what: "slots", .. })
    ));
}

#[test]
fn a_request_takes_as_many_helpers_as_it_asks_for() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Meals", Some(2)), T0).unwrap();
    l.share(&[asked]);
    let bob = l.bob.claim(&req, T0 + 10).unwrap();
    l.share(&[bob]);
    let cat = l.cat.claim(&req, T0 + 11).unwrap();
    l.share(&[cat]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.helpers, Some(2));
    assert_eq!(
        item.claims,
        vec![
            claim(&l.b, T0 + 10, None, false),
            claim(&l.c, T0 + 11, None, false)
        ]
    );
    assert_eq!(item.status, Some(RequestStatus::Claimed));
    assert_eq!(
        l.dan.claim(&req, T0 + 12),
        Err(CoreError::RequestFull(req.to_string()))
    );
    assert_eq!(
        l.dan.claim_with(&req, Some("1"), None, T0 + 12),
        Err(CoreError::UnknownSlot {
            id: req.to_string(),
            slot: "1".into()
        })
    );
    // A spot given up is a spot free.
    let off = l.bob.unclaim(&req, T0 + 13).unwrap();
    l.share(&[off]);
    let dan = l.dan.claim(&req, T0 + 14).unwrap();
    l.share(&[dan]);
    let item = l.same_everywhere(&req);
    let members: Vec<&str> = item.claims.iter().map(|c| c.member.as_str()).collect();
    assert_eq!(members, vec![l.c.as_str(), l.d.as_str()]);
    assert!(item.claims.iter().all(|c| !c.standby));

    // Sane numbers only.
    for helpers in [0, MAX_HELPERS + 1] {
        assert!(matches!(
            l.ann.ask(&iid(2), &meals("x", Some(helpers)), T0),
            Err(CoreError::Invalid {
                what: "helpers",
                ..
            })
        ));
    }
    // Without a number, anyone may help.
    let open = iid(3);
    let asked = l.ann.ask(&open, &meals("Anything", None), T0).unwrap();
    l.share(&[asked]);
    let claims = [
        l.bob.claim(&open, T0 + 20).unwrap(),
        l.cat.claim(&open, T0 + 20).unwrap(),
        l.dan.claim(&open, T0 + 20).unwrap(),
    ];
    l.share(&claims);
    let item = l.same_everywhere(&open);
    assert_eq!(item.claims.len(), 3);
    assert!(item.claims.iter().all(|c| !c.standby));
}

/// Changing one's message is not a new claim: on the only spot, taken by two members while
/// apart, the holder keeps it and the one on standby stays there, whoever edits.
#[test]
fn a_new_claim_message_keeps_the_claims_place() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Dinner", Some(1)), T0).unwrap();
    l.share(&[asked]);
    // Both claim the only spot while apart.
    let bob = l
        .bob
        .claim_with(&req, None, Some("soup at 6"), T0 + 10)
        .unwrap();
    let cat = l
        .cat
        .claim_with(&req, None, Some("pasta"), T0 + 11)
        .unwrap();
    l.share(&[bob, cat]);
    let item = l.same_everywhere(&req);
    let original = item.claims.clone();
    let holder = item.claims[0].member.clone();
    let standby = item.claims[1].member.clone();
    assert!(!item.claims[0].standby && item.claims[1].standby);

    for (n, who) in [holder.clone(), standby.clone(), holder.clone()]
        .iter()
        .enumerate()
    {
        let message = format!("message {n}");
        let change = {
            let c = if *who == l.b { &mut l.bob } else { &mut l.cat };
            c.claim_with(&req, None, Some(&message), T0 + 20 + n as i64)
                .unwrap()
        };
        l.share(&[change]);
        let item = l.same_everywhere(&req);
        assert_eq!(item.claims[0].member, holder);
        assert!(!item.claims[0].standby);
        assert_eq!(item.claims[1].member, standby);
        assert!(item.claims[1].standby);
        let edited = item.claims.iter().find(|c| c.member == *who).unwrap();
        assert_eq!(edited.message.as_deref(), Some(message.as_str()));
        // The claim's own time is when it was made.
        let made = original.iter().find(|c| c.member == *who).unwrap();
        assert_eq!(edited.at, made.at);
    }

    // Claiming again without a message (or a blank or the same one) is claiming twice.
    let mine = l.same_everywhere(&req);
    let bobs = mine.claims.iter().find(|c| c.member == l.b).unwrap();
    let same = bobs.message.clone().unwrap();
    for blank in [None, Some("  "), Some(same.as_str())] {
        assert_eq!(
            l.bob.claim_with(&req, None, blank, T0 + 30),
            Err(CoreError::AlreadyClaimed(req.to_string()))
        );
    }
    let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
    assert!(matches!(
        l.bob.claim_with(&req, None, Some(&long), T0 + 30),
        Err(CoreError::TooLong {
            field: "message",
            ..
        })
    ));
    // Dan cannot squeeze in, message or not.
    assert_eq!(
        l.dan.claim_with(&req, None, Some("me too"), T0 + 30),
        Err(CoreError::RequestFull(req.to_string()))
    );
}

#[test]
fn requests_expire_at_their_deadline() {
    let mut l = life();
    let req = iid(1);
    let mut ask = meals("Groceries", None);
    ask.needed_by = Some(T0 + DAY);
    let asked = l.ann.ask(&req, &ask, T0).unwrap();
    l.share(&[asked]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.deadline(), Some(T0 + DAY));
    assert_eq!(item.status_at(T0 + DAY), Some(RequestStatus::Open));
    assert_eq!(item.status_at(T0 + DAY + 1), Some(RequestStatus::Expired));
    let expired = Err(CoreError::RequestClosed {
        id: req.to_string(),
        status: "expired",
    });
    assert_eq!(l.bob.claim(&req, T0 + DAY + 1), expired);
    assert_eq!(
        l.bob.claim_with(&req, None, Some("late"), T0 + DAY + 1),
        expired
    );

    let bob = l.bob.claim(&req, T0 + 10).unwrap();
    l.share(&[bob]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.status, Some(RequestStatus::Claimed));
    assert_eq!(item.status_at(T0 + 2 * DAY), Some(RequestStatus::Expired));
    assert_eq!(l.cat.claim(&req, T0 + 2 * DAY), expired);
    // Letting go and closing still work once it has expired.
    let off = l.bob.unclaim(&req, T0 + 2 * DAY).unwrap();
    let done = l.ann.done(&req, T0 + 2 * DAY).unwrap();
    l.share(&[off, done]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.status_at(T0 + 3 * DAY), Some(RequestStatus::Fulfilled));

    // No deadline, no expiry; offers and check-ins never expire.
    let whenever = iid(2);
    let mut ask = meals("Whenever", None);
    ask.needed_by = None;
    let offer = iid(3);
    let checkin = iid(4);
    let changes = [
        l.ann.ask(&whenever, &ask, T0).unwrap(),
        l.bob.offer(&offer, &soup_offer(), &[], T0).unwrap(),
        l.cat.checkin(&checkin, Mood::Okay, None, T0).unwrap(),
    ];
    l.share(&changes);
    let far = T0 + 10_000 * DAY;
    assert_eq!(
        l.dan.item(whenever.as_str()).unwrap().status_at(far),
        Some(RequestStatus::Open)
    );
    assert_eq!(
        l.dan.item(offer.as_str()).unwrap().status_at(far),
        Some(RequestStatus::Open)
    );
    assert_eq!(l.dan.item(checkin.as_str()).unwrap().status_at(far), None);
    l.dan.claim(&whenever, far).unwrap();
}

#[test]
fn only_the_asker_thanks_and_only_those_who_claimed() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Dinner", Some(1)), T0).unwrap();
    l.share(&[asked]);
    assert_eq!(
        l.ann.thank(&req, &[], Some("thanks"), T0 + 1),
        Err(CoreError::NotClaimed(req.to_string()))
    );
    // Nobody to thank yet, but Bob may not thank on Ann's request anyway.
    assert_eq!(
        l.bob.thank(&req, &[], None, T0 + 1),
        Err(CoreError::NotAuthor(req.to_string()))
    );
    // Bob and Cat take the only spot while apart: one holds it, one is on standby.
    let bob = l.bob.claim(&req, T0 + 10).unwrap();
    let cat = l.cat.claim(&req, T0 + 10).unwrap();
    l.share(&[bob, cat]);
    let item = l.same_everywhere(&req);
    let holder = item.claims[0].member.clone();
    let standby = item.claims[1].member.clone();

    assert_eq!(
        l.bob.thank(&req, &[], None, T0 + 20),
        Err(CoreError::NotAuthor(req.to_string()))
    );
    assert_eq!(
        l.bob.thank(&req, std::slice::from_ref(&l.c), None, T0 + 20),
        Err(CoreError::NotAuthor(req.to_string()))
    );
    assert_eq!(
        l.ann.thank(&req, std::slice::from_ref(&l.d), None, T0 + 20),
        Err(CoreError::NotClaimed(req.to_string()))
    );
    let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
    assert!(matches!(
        l.ann.thank(&req, &[], Some(&long), T0 + 20),
        Err(CoreError::TooLong {
            field: "thanks",
            ..
        })
    ));
    // Without names: everyone holding a spot, not those on standby.
    let thanks = l
        .ann
        .thank(&req, &[], Some("you saved my week"), T0 + 20)
        .unwrap();
    l.share(&[thanks]);
    let item = l.same_everywhere(&req);
    assert_eq!(
        item.thanks,
        vec![ThanksView {
            member: holder.clone(),
            note: Some("you saved my week".into())
        }]
    );
    // Named, anyone who claimed, standby included; after it is done too.
    let done = l.ann.done(&req, T0 + 30).unwrap();
    l.share(&[done]);
    let thanks = l
        .ann
        .thank(&req, std::slice::from_ref(&standby), None, T0 + 31)
        .unwrap();
    l.share(&[thanks]);
    let item = l.same_everywhere(&req);
    let mut expected = vec![
        ThanksView {
            member: holder,
            note: Some("you saved my week".into()),
        },
        ThanksView {
            member: standby,
            note: None,
        },
    ];
    expected.sort_by(|a, b| a.member.cmp(&b.member));
    assert_eq!(item.thanks, expected);
    assert_eq!(item.updated_at, T0 + 31);

    // Only requests take thanks.
    let checkin = iid(2);
    let offer = iid(3);
    let changes = [
        l.ann.checkin(&checkin, Mood::Good, None, T0).unwrap(),
        l.ann.offer(&offer, &soup_offer(), &[], T0).unwrap(),
    ];
    l.share(&changes);
    let accept = l.bob.claim(&offer, T0 + 40).unwrap();
    l.share(&[accept]);
    for id in [&checkin, &offer] {
        assert_eq!(
            l.ann.thank(id, std::slice::from_ref(&l.b), None, T0 + 41),
            Err(CoreError::NotARequest(id.to_string()))
        );
        assert_eq!(
            l.ann.thank(id, &[], None, T0 + 41),
            Err(CoreError::NotARequest(id.to_string()))
        );
    }
}

#[test]
fn offers_are_accepted_and_withdrawn() {
    let mut l = life();
    let offer = iid(1);
    let made = l.bob.offer(&offer, &soup_offer(), &[], T0).unwrap();
    l.share(&[made]);
    let item = l.same_everywhere(&offer);
    assert_eq!(item.kind, ItemKind::Offer);
    assert_eq!(item.author, l.b);
    assert_eq!(item.title.as_deref(), Some("Soup on Sundays"));
    assert_eq!(item.details.as_deref(), Some("vegetarian"));
    assert_eq!(item.when.as_deref(), Some("Sundays after 5"));
    assert_eq!(item.category, Some(HelpKind::Meals));
    assert_eq!(item.status, Some(RequestStatus::Open));
    assert_eq!(item.audience, None);

    assert_eq!(
        l.bob.claim(&offer, T0 + 1),
        Err(CoreError::OwnRequest(offer.to_string()))
    );
    let cat = l
        .cat
        .claim_with(&offer, None, Some("yes please"), T0 + 2)
        .unwrap();
    let ann = l.ann.claim(&offer, T0 + 3).unwrap();
    l.share(&[cat, ann]);
    let item = l.same_everywhere(&offer);
    assert_eq!(item.claims.len(), 2);
    assert!(item.claims.iter().all(|c| !c.standby));
    assert!(
        item.claims
            .contains(&claim(&l.c, T0 + 2, Some("yes please"), false))
    );
    // Accepted offers stay open: others may accept them too.
    assert_eq!(item.status, Some(RequestStatus::Open));
    assert_eq!(
        l.cat.claim(&offer, T0 + 4),
        Err(CoreError::AlreadyClaimed(offer.to_string()))
    );
    let cat = l
        .cat
        .claim_with(&offer, None, Some("two portions?"), T0 + 4)
        .unwrap();
    l.share(&[cat]);
    let item = l.same_everywhere(&offer);
    assert!(
        item.claims
            .contains(&claim(&l.c, T0 + 2, Some("two portions?"), false))
    );

    // Offers are withdrawn, not done, and only by their author.
    assert_eq!(
        l.bob.done(&offer, T0 + 5),
        Err(CoreError::NotARequest(offer.to_string()))
    );
    assert_eq!(
        l.cat.cancel(&offer, T0 + 5),
        Err(CoreError::NotAuthor(offer.to_string()))
    );
    let withdrawn = l.bob.cancel(&offer, T0 + 6).unwrap();
    l.share(&[withdrawn]);
    let item = l.same_everywhere(&offer);
    assert_eq!(item.status, Some(RequestStatus::Withdrawn));
    assert_eq!(
        item.status_at(T0 + 100 * DAY),
        Some(RequestStatus::Withdrawn)
    );
    let closed = Err(CoreError::RequestClosed {
        id: offer.to_string(),
        status: "withdrawn",
    });
    assert_eq!(l.dan.claim(&offer, T0 + 7), closed);
    assert_eq!(
        l.cat.claim_with(&offer, None, Some("still?"), T0 + 7),
        closed
    );
    assert_eq!(l.bob.cancel(&offer, T0 + 7), closed);
    // Letting go of an acceptance stays possible.
    let off = l.cat.unclaim(&offer, T0 + 8).unwrap();
    l.share(&[off]);
    let item = l.same_everywhere(&offer);
    assert_eq!(item.claims, vec![claim(&l.a, T0 + 3, None, false)]);

    // Check-ins take no claims and cannot be withdrawn.
    let checkin = iid(2);
    let posted = l.bob.checkin(&checkin, Mood::Okay, None, T0).unwrap();
    l.share(&[posted]);
    assert_eq!(
        l.cat.claim(&checkin, T0 + 9),
        Err(CoreError::NotARequest(checkin.to_string()))
    );
    assert_eq!(
        l.bob.cancel(&checkin, T0 + 9),
        Err(CoreError::NotARequest(checkin.to_string()))
    );
    assert_eq!(
        l.bob.offer(&iid(3), &NewOffer::default(), &[], T0),
        Err(CoreError::Empty("offer"))
    );
}

#[test]
fn only_authors_edit_their_open_public_items() {
    let mut l = life();
    let req = iid(1);
    let checkin = iid(2);
    let offer = iid(3);
    let private = iid(4);
    let changes = [
        l.ann.ask(&req, &meals("Meals", None), T0).unwrap(),
        l.ann
            .checkin(&checkin, Mood::Low, Some("rough"), T0)
            .unwrap(),
        l.bob.offer(&offer, &soup_offer(), &[], T0).unwrap(),
        l.ann
            .post_checkin(
                &private,
                &NewCheckin {
                    mood: Mood::Low,
                    note: Some("just for Bob".into()),
                    help: None,
                },
                std::slice::from_ref(&l.b),
                T0,
            )
            .unwrap(),
    ];
    l.share(&changes);
    let claim = l
        .cat
        .claim_with(&req, None, Some("lasagne"), T0 + 1)
        .unwrap();
    l.share(&[claim]);

    let edit = ItemEdit {
        title: Some(" Meals for the week ".into()),
        details: Some("no nuts".into()),
        needed_by: Some(T0 + 9 * DAY),
        ..ItemEdit::default()
    };
    assert_eq!(
        l.bob.edit(&req, &edit, T0 + 2),
        Err(CoreError::NotAuthor(req.to_string()))
    );
    let edited = l.ann.edit(&req, &edit, T0 + 2).unwrap();
    l.share(&[edited]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.title.as_deref(), Some("Meals for the week"));
    assert_eq!(item.details.as_deref(), Some("no nuts"));
    assert_eq!(item.needed_by, Some(T0 + 9 * DAY));
    assert_eq!(item.updated_at, T0 + 2);
    // Claims are untouched by an edit.
    assert_eq!(item.claims.len(), 1);
    assert_eq!(item.claims[0].message.as_deref(), Some("lasagne"));

    let note = ItemEdit {
        note: Some("better now".into()),
        ..ItemEdit::default()
    };
    let edited = l.ann.edit(&checkin, &note, T0 + 3).unwrap();
    let when = ItemEdit {
        when: Some("Sundays and Mondays".into()),
        ..ItemEdit::default()
    };
    assert_eq!(
        l.ann.edit(&offer, &when, T0 + 3),
        Err(CoreError::NotAuthor(offer.to_string()))
    );
    let edited_offer = l.bob.edit(&offer, &when, T0 + 3).unwrap();
    l.share(&[edited, edited_offer]);
    assert_eq!(
        l.same_everywhere(&checkin).note.as_deref(),
        Some("better now")
    );
    assert_eq!(
        l.same_everywhere(&offer).when.as_deref(),
        Some("Sundays and Mondays")
    );

    // A window still ends after it starts.
    let mut window = meals("Window", None);
    window.window_start = Some(T0 + DAY);
    window.needed_by = Some(T0 + 2 * DAY);
    let windowed = iid(5);
    let asked = l.ann.ask(&windowed, &window, T0).unwrap();
    l.share(&[asked]);
    for end in [T0, T0 + DAY] {
        let early = ItemEdit {
            needed_by: Some(end),
            ..ItemEdit::default()
        };
        assert!(matches!(
            l.ann.edit(&windowed, &early, T0 + 4),
            Err(CoreError::Invalid {
                what: "time window",
                ..
            })
        ));
    }
    let later = ItemEdit {
        needed_by: Some(T0 + 3 * DAY),
        ..ItemEdit::default()
    };
    let edited = l.ann.edit(&windowed, &later, T0 + 4).unwrap();
    l.share(&[edited]);
    assert_eq!(l.same_everywhere(&windowed).needed_by, Some(T0 + 3 * DAY));

    // Nothing this kind of item has, or an empty title.
    assert!(matches!(
        l.ann.edit(&req, &when, T0 + 4),
        Err(CoreError::Invalid { what: "edit", .. })
    ));
    assert!(matches!(
        l.ann.edit(&checkin, &edit, T0 + 4),
        Err(CoreError::Invalid { what: "edit", .. })
    ));
    // The same note again changes nothing.
    assert!(matches!(
        l.ann.edit(&checkin, &note, T0 + 4),
        Err(CoreError::Invalid { what: "edit", .. })
    ));
    let blank = ItemEdit {
        title: Some(" ".into()),
        ..ItemEdit::default()
    };
    assert_eq!(
        l.ann.edit(&req, &blank, T0 + 4),
        Err(CoreError::Empty("title"))
    );
    // Private items are sealed once; closed ones are done with.
    assert_eq!(
        l.ann.edit(&private, &note, T0 + 4),
        Err(CoreError::PrivateEdit(private.to_string()))
    );
    let done = l.ann.done(&req, T0 + 5).unwrap();
    let withdrawn = l.bob.cancel(&offer, T0 + 5).unwrap();
    l.share(&[done, withdrawn]);
    assert_eq!(
        l.ann.edit(&req, &edit, T0 + 6),
        Err(CoreError::RequestClosed {
            id: req.to_string(),
            status: "fulfilled"
        })
    );
    assert_eq!(
        l.bob.edit(&offer, &when, T0 + 6),
        Err(CoreError::RequestClosed {
            id: offer.to_string(),
            status: "withdrawn"
        })
    );
}

#[test]
fn nudges_reach_only_their_target() {
    let mut l = life();
    let nudge = iid(1);
    let sent = l
        .ann
        .nudge(
            &nudge,
            &l.b.clone(),
            Some("thinking of you, NUDGE-TEXT"),
            T0,
        )
        .unwrap();
    l.share(&[sent]);
    let seen = l.ann.item(nudge.as_str()).unwrap();
    assert_eq!(seen.kind, ItemKind::Nudge);
    assert_eq!(seen.author, l.a);
    assert_eq!(seen.target.as_deref(), Some(l.b.as_str()));
    assert_eq!(seen.note.as_deref(), Some("thinking of you, NUDGE-TEXT"));
    assert_eq!(seen.audience, Some(vec![l.b.clone()]));
    assert_eq!(seen.status, None);
    assert_eq!(l.bob.item(nudge.as_str()), Some(seen.clone()));
    assert_eq!(l.fresh(1).item(nudge.as_str()), Some(seen));
    for c in [&l.cat, &l.dan] {
        assert_eq!(c.item(nudge.as_str()), None);
        assert!(c.items().is_empty());
        assert_eq!(
            c.resolve_item(nudge.as_str()),
            Err(CoreError::UnknownItem(nudge.to_string()))
        );
    }
    assert!(!contains(&l.cat.doc.save_nocompress(), "NUDGE-TEXT"));
    assert!(l.log.iter().all(|c| !contains(c, "NUDGE-TEXT")));
    assert_eq!(
        l.cat.reply(&nudge, &iid(2), "hi", T0 + 1),
        Err(CoreError::UnknownItem(nudge.to_string()))
    );
    // Nudges take no claims, are not closed, and are never public.
    assert_eq!(
        l.bob.claim(&nudge, T0 + 1),
        Err(CoreError::NotARequest(nudge.to_string()))
    );
    assert_eq!(
        l.ann.cancel(&nudge, T0 + 1),
        Err(CoreError::NotARequest(nudge.to_string()))
    );
    assert!(matches!(
        l.ann.nudge(&iid(3), &l.a.clone(), None, T0),
        Err(CoreError::Invalid { what: "nudge", .. })
    ));
    let stranger = identity(77).member_id().to_string();
    assert_eq!(
        l.ann.nudge(&iid(3), &stranger, None, T0),
        Err(CoreError::NotMember(stranger.clone()))
    );
    // The target answers; only the two of them read it.
    let answer = l.bob.reply(&nudge, &iid(4), "doing ok", T0 + 2).unwrap();
    l.share(&[answer]);
    for c in [&l.ann, &l.bob] {
        let replies = c.item(nudge.as_str()).unwrap().replies;
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].text, "doing ok");
    }
    assert!(l.log.iter().all(|c| !contains(c, "doing ok")));
}

#[test]
fn quiet_hours_are_set_by_their_owner_alone() {
    let mut l = life();
    let set = l.bob.set_my_quiet_hours(Some(" 22:00-07:00 "), T0).unwrap();
    l.share(&[set]);
    for c in l.all() {
        let bob = c.members().into_iter().find(|m| m.id == l.b).unwrap();
        assert_eq!(bob.quiet.as_deref(), Some("22:00-07:00"));
        assert!(
            c.members()
                .iter()
                .filter(|m| m.id != l.b)
                .all(|m| m.quiet.is_none())
        );
    }
    let long = "x".repeat(MAX_QUIET_CHARS + 1);
    assert!(matches!(
        l.bob.set_my_quiet_hours(Some(&long), T0),
        Err(CoreError::TooLong {
            field: "quiet hours",
            ..
        })
    ));
    // The same hours again, and clearing twice, are no errors: each is one change.
    let again = l.bob.set_my_quiet_hours(Some("22:00-07:00"), T0).unwrap();
    l.share(&[again]);
    let cleared = l.bob.set_my_quiet_hours(None, T0 + 1).unwrap();
    let twice = l.bob.set_my_quiet_hours(None, T0 + 2).unwrap();
    let blank = l.bob.set_my_quiet_hours(Some(" "), T0 + 3).unwrap();
    l.share(&[cleared, twice, blank]);
    for c in l.all() {
        assert!(c.members().iter().all(|m| m.quiet.is_none()));
        assert_eq!(c.rejected_count(), 0);
    }
    let set = l
        .bob
        .set_my_quiet_hours(Some("21:00-06:00"), T0 + 4)
        .unwrap();
    l.share(&[set]);
    let bob = l.dan.members().into_iter().find(|m| m.id == l.b).unwrap();
    assert_eq!(bob.quiet.as_deref(), Some("21:00-06:00"));
    assert_eq!(l.fresh(2).members(), l.cat.members());

    // Quiet hours someone else wrote on Cat's entry are refused, and never read.
    let forged = raw_edit(&mut l.bob, |doc| {
        let entry = map_at(doc, &map_at(doc, &automerge::ROOT, schema::MEMBERS), &l.c);
        doc.put(&entry, schema::QUIET, "00:00-23:59").unwrap();
    });
    let before = l.ann.rejected_count();
    assert!(l.ann.apply_changes(std::slice::from_ref(&forged)).is_err());
    assert_eq!(l.ann.rejected_count(), before + 1);
    l.ann.apply_unchecked(&[forged]).unwrap();
    let cat = l.ann.members().into_iter().find(|m| m.id == l.c).unwrap();
    assert_eq!(cat.quiet, None);
}

#[test]
fn members_are_found_by_id_prefix_or_name() {
    let l = life();
    let c = &l.cat;
    assert_eq!(c.resolve_member(&l.b), Ok(l.b.clone()));
    assert_eq!(c.resolve_member(&format!(" {} ", l.b)), Ok(l.b.clone()));
    assert_eq!(c.resolve_member(&l.b.to_uppercase()), Ok(l.b.clone()));
    assert_eq!(c.resolve_member(&l.d[..6]), Ok(l.d.clone()));
    assert_eq!(c.resolve_member(&l.d[..6].to_uppercase()), Ok(l.d.clone()));
    assert_eq!(c.resolve_member("bob"), Ok(l.b.clone()));
    assert_eq!(c.resolve_member(" ANN "), Ok(l.a.clone()));
    assert_eq!(
        c.resolve_member("nobody"),
        Err(CoreError::NotMember("nobody".into()))
    );
    // Fewer than four characters of an id name nobody.
    assert_eq!(
        c.resolve_member(&l.d[..3]),
        Err(CoreError::NotMember(l.d[..3].to_string()))
    );

    // Ids sharing a prefix, and two members of one name.
    let key = |first: u8, last: u8| {
        let mut k = [1u8; 32];
        k[0] = first;
        k[31] = last;
        member_id(&k)
    };
    let (sam, sam2, kit) = (key(1, 2), key(1, 3), key(9, 4));
    assert_eq!(sam[..48], sam2[..48]);
    let (mut circle, _) = Circle::found(&sam, "Sam", "x", T0).unwrap();
    circle.add_member(&sam2, "sam", Role::Member, T0).unwrap();
    circle.add_member(&kit, "Kit", Role::Member, T0).unwrap();
    let ambiguous = |r: Result<String, CoreError>| {
        assert!(
            matches!(r, Err(CoreError::Invalid { what: "member", .. })),
            "{r:?}"
        );
    };
    ambiguous(circle.resolve_member(&sam[..10]));
    ambiguous(circle.resolve_member("SAM"));
    assert_eq!(circle.resolve_member(&sam), Ok(sam.clone()));
    assert_eq!(circle.resolve_member(&sam2), Ok(sam2.clone()));
    assert_eq!(circle.resolve_member("kit"), Ok(kit.clone()));
    assert_eq!(circle.resolve_member(&kit[..4]), Ok(kit.clone()));
    ambiguous(circle.resolve_member(&sam[..48]));
}

#[test]
fn last_touched_names_what_changed() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Meals", None), T0).unwrap();
    assert_eq!(l.ann.last_touched(), Some(&[req.to_string()][..]));
    l.share(&[asked]);
    assert_eq!(l.bob.last_touched(), Some(&[req.to_string()][..]));
    let reply = l.bob.reply(&req, &iid(2), "on it", T0 + 1).unwrap();
    assert_eq!(l.bob.last_touched(), Some(&[req.to_string()][..]));
    let claim = l.bob.claim_with(&req, None, Some("soup"), T0 + 1).unwrap();
    assert_eq!(l.bob.last_touched(), Some(&[req.to_string()][..]));
    l.share(&[reply, claim]);
    assert_eq!(l.ann.last_touched(), Some(&[req.to_string()][..]));
    let quiet = l.cat.set_my_quiet_hours(Some("22-7"), T0).unwrap();
    assert_eq!(l.cat.last_touched(), Some(&[][..]));
    l.share(&[quiet]);
    assert_eq!(l.ann.last_touched(), Some(&[][..]));
    let dan = identity(5).member_id().to_string();
    let added = l.ann.add_member(&dan, "Eve", Role::Member, T0).unwrap();
    assert_eq!(l.ann.last_touched(), None);
    l.share(&[added]);
    assert_eq!(l.bob.last_touched(), None);
}

/// Race (a): two members take the last spot (a slot, or the only helper wanted) while
/// apart. Once changes flow, every member and every fresh load shows the same member
/// holding it and the other on standby, whichever order the claims arrive in. The claim
/// with the lower automerge op id wins, so the member who had made more edits before
/// claiming (a higher Lamport counter) is on standby, whoever they are. When the holder
/// lets go, the one on standby moves up everywhere.
#[test]
fn race_for_the_last_spot_is_decided_alike_everywhere() {
    for (slotted, busy_is_bob) in [(true, true), (true, false), (false, true), (false, false)] {
        let case = format!("slotted {slotted}, busy Bob {busy_is_bob}");
        let mut l = life();
        let req = iid(1);
        let ask = if slotted {
            recurring("Pick-up", vec![T0 + DAY])
        } else {
            meals("Dinner", Some(1))
        };
        let asked = l.ann.ask(&req, &ask, T0).unwrap();
        l.share(&[asked]);
        let slot = slotted.then_some("1");

        // Apart: the busy one posts a few check-ins first (kept to themselves), then both
        // claim the same last spot.
        let mut bobs = Vec::new();
        let mut cats = Vec::new();
        {
            let (busy, log) = if busy_is_bob {
                (&mut l.bob, &mut bobs)
            } else {
                (&mut l.cat, &mut cats)
            };
            for n in 0..3 {
                log.push(
                    busy.checkin(&iid(10 + n), Mood::Okay, None, T0 + 5)
                        .unwrap(),
                );
            }
        }
        bobs.push(
            l.bob
                .claim_with(&req, slot, Some("bob's"), T0 + 10)
                .unwrap(),
        );
        cats.push(
            l.cat
                .claim_with(&req, slot, Some("cat's"), T0 + 10)
                .unwrap(),
        );
        let (winner, loser) = if busy_is_bob {
            (l.c.clone(), l.b.clone())
        } else {
            (l.b.clone(), l.c.clone())
        };

        // Each claimer sees the other's claim; Ann and Dan get both, in opposite orders,
        // Dan one change at a time.
        deliver(&cats, &mut [&mut l.bob]);
        deliver(&bobs, &mut [&mut l.cat]);
        deliver(&bobs, &mut [&mut l.ann]);
        deliver(&cats, &mut [&mut l.ann]);
        for change in cats.iter().chain(&bobs).rev() {
            // Out of dependency order too: early ones wait for theirs.
            l.dan.apply_changes(std::slice::from_ref(change)).unwrap();
        }
        l.log.extend(bobs.iter().cloned());
        l.log.extend(cats.iter().cloned());
        let item = l.same_everywhere(&req);
        let mut reversed = l.log.clone();
        reversed.reverse();
        assert_eq!(
            Circle::load(&l.a, &reversed).unwrap().item(req.as_str()),
            Some(item.clone()),
            "{case}"
        );
        let claims = if slotted {
            assert!(item.claims.is_empty(), "{case}");
            item.slots[0].claims.clone()
        } else {
            assert!(item.slots.is_empty(), "{case}");
            item.claims.clone()
        };
        let bob_id = l.b.clone();
        let message = move |m: &str| if m == bob_id { "bob's" } else { "cat's" };
        assert_eq!(
            claims,
            vec![
                claim(&winner, T0 + 10, Some(message(&winner)), false),
                claim(&loser, T0 + 10, Some(message(&loser)), true),
            ],
            "{case}"
        );
        if slotted {
            assert_eq!(
                holders(&item.slots[0]),
                (Some(winner.as_str()), vec![loser.as_str()]),
                "{case}"
            );
        }
        assert_eq!(item.status, Some(RequestStatus::Claimed), "{case}");
        assert!(item.helped_by(&winner) && !item.helped_by(&loser), "{case}");
        // Nobody else gets in; the one on standby has already claimed.
        let full = if slotted {
            CoreError::SlotTaken {
                id: req.to_string(),
                slot: "1".into(),
            }
        } else {
            CoreError::RequestFull(req.to_string())
        };
        assert_eq!(
            l.dan.claim_with(&req, slot, None, T0 + 11),
            Err(full),
            "{case}"
        );

        // The holder lets go: the one on standby holds it now, everywhere.
        let off = if winner == l.b {
            l.bob.unclaim(&req, T0 + 12).unwrap()
        } else {
            l.cat.unclaim(&req, T0 + 12).unwrap()
        };
        l.share(&[off]);
        let item = l.same_everywhere(&req);
        let claims = if slotted {
            item.slots[0].claims.clone()
        } else {
            item.claims.clone()
        };
        assert_eq!(
            claims,
            vec![claim(&loser, T0 + 10, Some(message(&loser)), false)],
            "{case}"
        );
        assert!(item.helped_by(&loser), "{case}");
    }
}

/// Race (b): a member claims while the asker cancels, each before seeing the other. After
/// both changes reach everyone, the request is cancelled everywhere and the claim, which
/// nobody but its maker may remove, is still listed; nobody can claim any more.
#[test]
fn a_claim_racing_a_cancel_ends_cancelled_with_the_claim_listed() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Meals", Some(2)), T0).unwrap();
    l.share(&[asked]);
    let claimed = l
        .bob
        .claim_with(&req, None, Some("on my way"), T0 + 10)
        .unwrap();
    let cancelled = l.ann.cancel(&req, T0 + 10).unwrap();
    deliver(std::slice::from_ref(&claimed), &mut [&mut l.ann]);
    deliver(std::slice::from_ref(&cancelled), &mut [&mut l.bob]);
    deliver(&[claimed.clone(), cancelled.clone()], &mut [&mut l.cat]);
    deliver(&[cancelled.clone(), claimed.clone()], &mut [&mut l.dan]);
    l.log.extend([claimed, cancelled]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.status, Some(RequestStatus::Cancelled));
    assert_eq!(item.status_at(T0 + 11), Some(RequestStatus::Cancelled));
    assert_eq!(
        item.claims,
        vec![claim(&l.b, T0 + 10, Some("on my way"), false)]
    );
    let closed = Err(CoreError::RequestClosed {
        id: req.to_string(),
        status: "cancelled",
    });
    assert_eq!(l.cat.claim(&req, T0 + 11), closed);
    assert_eq!(
        l.bob.claim_with(&req, None, Some("still coming?"), T0 + 11),
        closed
    );
    assert_eq!(l.ann.cancel(&req, T0 + 11), closed);
    // The claimer can still take their name off.
    let off = l.bob.unclaim(&req, T0 + 12).unwrap();
    l.share(&[off]);
    let item = l.same_everywhere(&req);
    assert!(item.claims.is_empty());
    assert_eq!(item.status, Some(RequestStatus::Cancelled));
}

/// Race (c): a helper changes their claim's message while the asker marks the request
/// done, each before seeing the other. Everyone ends with a fulfilled request whose claim
/// carries the edited message (and the time of the original claim).
#[test]
fn a_message_edit_racing_done_ends_fulfilled_with_the_new_message() {
    let mut l = life();
    let req = iid(1);
    let asked = l.ann.ask(&req, &meals("Meals", Some(1)), T0).unwrap();
    l.share(&[asked]);
    let claimed = l
        .bob
        .claim_with(&req, None, Some("soup at 6"), T0 + 10)
        .unwrap();
    l.share(&[claimed]);
    let edited = l
        .bob
        .claim_with(&req, None, Some("soup at 7, sorry"), T0 + 20)
        .unwrap();
    let done = l.ann.done(&req, T0 + 20).unwrap();
    deliver(std::slice::from_ref(&edited), &mut [&mut l.ann]);
    deliver(std::slice::from_ref(&done), &mut [&mut l.bob]);
    deliver(&[edited.clone(), done.clone()], &mut [&mut l.cat]);
    deliver(&[done.clone(), edited.clone()], &mut [&mut l.dan]);
    l.log.extend([edited, done]);
    let item = l.same_everywhere(&req);
    assert_eq!(item.status, Some(RequestStatus::Fulfilled));
    assert_eq!(
        item.claims,
        vec![claim(&l.b, T0 + 10, Some("soup at 7, sorry"), false)]
    );
    assert_eq!(
        l.bob.claim_with(&req, None, Some("too late"), T0 + 21),
        Err(CoreError::RequestClosed {
            id: req.to_string(),
            status: "fulfilled"
        })
    );
}

/// Private items: the author and the audience read the same thing; anyone else holds the
/// sealed bytes (and checks every change to them) but sees no item, and no plaintext is
/// anywhere in what they hold.
#[test]
fn private_items_are_read_only_by_their_audience() {
    let mut l = life();
    let (a, b, c) = (l.a.clone(), l.b.clone(), l.c.clone());
    let checkin = iid(1);
    let req = iid(2);
    let offer = iid(3);
    let public = iid(4);
    let secrets = [
        "NOTE-1",
        "HELP-2",
        "TITLE-3",
        "DETAILS-4",
        "OFFER-5",
        "WHEN-6",
        "REPLY-7",
        "CLAIM-8",
        "THANKS-9",
        "ACCEPT-10",
        "EDITED-11",
    ];
    let mut ask = recurring("TITLE-3", vec![T0 + 2 * DAY, T0 + DAY]);
    ask.details = Some("DETAILS-4".into());
    ask.horizon = Some(Horizon::ThisWeek);
    let changes = [
        l.ann
            .post_checkin(
                &checkin,
                &NewCheckin {
                    mood: Mood::Struggling,
                    note: Some("NOTE-1".into()),
                    help: Some("HELP-2".into()),
                },
                std::slice::from_ref(&b),
                T0,
            )
            .unwrap(),
        // The author in the audience, and twice the same reader, change nothing.
        l.ann
            .ask_to(
                &req,
                &ask,
                &[b.clone(), c.clone(), a.clone(), c.clone()],
                T0,
            )
            .unwrap(),
        l.ann
            .offer(
                &offer,
                &NewOffer {
                    kind: HelpKind::Talk,
                    title: "OFFER-5".into(),
                    details: None,
                    when: Some("WHEN-6".into()),
                },
                std::slice::from_ref(&c),
                T0,
            )
            .unwrap(),
        l.ann
            .checkin(&public, Mood::Good, Some("PUBLIC-NOTE"), T0)
            .unwrap(),
    ];
    l.share(&changes);
    let replied = l.bob.reply(&req, &iid(5), "REPLY-7", T0 + 1).unwrap();
    let claimed = l
        .cat
        .claim_with(&req, Some("1"), Some("CLAIM-8"), T0 + 1)
        .unwrap();
    let accepted = l
        .cat
        .claim_with(&offer, None, Some("ACCEPT-10"), T0 + 1)
        .unwrap();
    l.share(&[replied, claimed, accepted]);
    let edited = l
        .cat
        .claim_with(&req, Some("1"), Some("EDITED-11"), T0 + 2)
        .unwrap();
    l.share(&[edited]);
    let thanked = l
        .ann
        .thank(&req, std::slice::from_ref(&c), Some("THANKS-9"), T0 + 3)
        .unwrap();
    l.share(&[thanked]);

    // Who sees what.
    let ids = |circle: &Circle| {
        let mut ids: Vec<String> = circle.items().into_iter().map(|i| i.id).collect();
        ids.sort();
        ids
    };
    let sorted = |list: &[&ItemId]| {
        let mut ids: Vec<String> = list.iter().map(|i| i.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&l.ann), sorted(&[&checkin, &req, &offer, &public]));
    assert_eq!(ids(&l.bob), sorted(&[&checkin, &req, &public]));
    assert_eq!(ids(&l.cat), sorted(&[&req, &offer, &public]));
    assert_eq!(ids(&l.dan), sorted(&[&public]));
    for id in [&checkin, &req, &offer] {
        assert_eq!(l.dan.item(id.as_str()), None);
        assert_eq!(
            l.dan.resolve_item(id.as_str()),
            Err(CoreError::UnknownItem(id.to_string()))
        );
        assert_eq!(
            l.dan.claim(id, T0 + 4),
            Err(CoreError::UnknownItem(id.to_string()))
        );
        assert_eq!(
            l.dan.reply(id, &iid(9), "hello?", T0 + 4),
            Err(CoreError::UnknownItem(id.to_string()))
        );
    }

    // The author and the audience read the same; so do they rebuilt from the log.
    let readers: [(&ItemId, &[usize]); 3] =
        [(&checkin, &[0, 1]), (&req, &[0, 1, 2]), (&offer, &[0, 2])];
    for (id, who) in readers {
        let view = l.ann.item(id.as_str()).unwrap();
        for &n in who {
            assert_eq!(l.all()[n].item(id.as_str()).as_ref(), Some(&view), "{n}");
            assert_eq!(l.fresh(n).item(id.as_str()).as_ref(), Some(&view), "{n}");
        }
    }
    let seen = l.bob.item(checkin.as_str()).unwrap();
    assert_eq!(seen.audience, Some(vec![b.clone()]));
    assert_eq!(
        (seen.mood, seen.note.as_deref(), seen.help.as_deref()),
        (Some(Mood::Struggling), Some("NOTE-1"), Some("HELP-2"))
    );
    let seen = l.cat.item(req.as_str()).unwrap();
    assert_eq!(seen.audience, Some(vec![b.clone(), c.clone()]));
    assert_eq!(seen.title.as_deref(), Some("TITLE-3"));
    assert_eq!(seen.details.as_deref(), Some("DETAILS-4"));
    assert_eq!(seen.horizon, Some(Horizon::ThisWeek));
    assert_eq!(seen.category, Some(HelpKind::Childcare));
    let slots: Vec<(&str, i64)> = seen.slots.iter().map(|s| (s.id.as_str(), s.at)).collect();
    assert_eq!(slots, vec![("1", T0 + DAY), ("2", T0 + 2 * DAY)]);
    assert_eq!(
        seen.slots[0].claims,
        vec![claim(&c, T0 + 1, Some("EDITED-11"), false)]
    );
    assert_eq!(seen.replies.len(), 1);
    assert_eq!(seen.replies[0].text, "REPLY-7");
    assert_eq!(seen.replies[0].author, b);
    assert_eq!(
        seen.thanks,
        vec![ThanksView {
            member: c.clone(),
            note: Some("THANKS-9".into())
        }]
    );
    assert_eq!(seen.status, Some(RequestStatus::Claimed));
    let seen = l.cat.item(offer.as_str()).unwrap();
    assert_eq!(seen.title.as_deref(), Some("OFFER-5"));
    assert_eq!(seen.when.as_deref(), Some("WHEN-6"));
    assert_eq!(
        seen.claims,
        vec![claim(&c, T0 + 1, Some("ACCEPT-10"), false)]
    );

    // Dan holds every change, refused none, and none of the words.
    assert_eq!(l.dan.rejected_count(), 0);
    let dans = l.dan.doc.save_nocompress();
    assert!(
        contains(&dans, "PUBLIC-NOTE"),
        "the check below can see text"
    );
    for secret in secrets {
        assert!(!contains(&dans, secret), "{secret} in Dan's document");
        assert!(
            l.log.iter().all(|change| !contains(change, secret)),
            "{secret} in a change"
        );
    }

    // Without the keys a member sees none of it, and cannot post privately; with them,
    // everything shows.
    let mut keyless = Circle::load(&b, &l.log).unwrap();
    assert_eq!(ids(&keyless), sorted(&[&public]));
    assert!(matches!(
        keyless.post_checkin(
            &iid(20),
            &NewCheckin {
                mood: Mood::Okay,
                note: None,
                help: None
            },
            std::slice::from_ref(&a),
            T0
        ),
        Err(CoreError::Document(_))
    ));
    keyless.set_keyring(TestKeyring::shared(&l.people[1], 5));
    assert_eq!(keyless.items(), l.bob.items());

    // Audiences are members; private items are not edited.
    let stranger = identity(77).member_id().to_string();
    assert_eq!(
        l.ann
            .offer(&iid(21), &soup_offer(), std::slice::from_ref(&stranger), T0),
        Err(CoreError::NotMember(stranger))
    );
    assert_eq!(
        l.ann.edit(
            &req,
            &ItemEdit {
                title: Some("x".into()),
                ..ItemEdit::default()
            },
            T0
        ),
        Err(CoreError::PrivateEdit(req.to_string()))
    );
}

/// A reply written in the open on a private item (which an honest member never writes)
/// would show its readers words everyone can read: it is accepted as a reply, but shown to
/// nobody, whether a reader or an outsider wrote it.
#[test]
fn a_reply_in_the_open_on_a_private_item_is_not_shown() {
    let mut l = life();
    let req = iid(1);
    let asked = l
        .ann
        .ask_to(
            &req,
            &meals("Private", None),
            &[l.b.clone(), l.c.clone()],
            T0,
        )
        .unwrap();
    l.share(&[asked]);
    let open_reply = |c: &mut Circle, item: &ItemId, reply: ItemId, text: &str| {
        raw_edit(c, |doc| {
            let replies = map_at(doc, &automerge::ROOT, schema::REPLIES);
            let r = doc
                .put_object(&replies, reply.as_str(), ObjType::Map)
                .unwrap();
            doc.put(&r, "i", item.as_str()).unwrap();
            doc.put(&r, "t", text).unwrap();
            doc.put(&r, "c", T0 + 1).unwrap();
        })
    };
    let by_reader = open_reply(&mut l.bob, &req, iid(2), "in the open");
    let by_outsider = open_reply(&mut l.dan, &req, iid(3), "me too");
    for c in [&mut l.ann, &mut l.cat] {
        c.apply_changes(&[by_reader.clone(), by_outsider.clone()])
            .unwrap();
        assert_eq!(c.rejected_count(), 0);
    }
    l.log.extend([by_reader, by_outsider]);
    for n in [0, 2] {
        let circle = l.fresh(n);
        let item = circle.item(req.as_str()).unwrap();
        assert!(item.replies.is_empty(), "{:?}", item.replies);
        assert_eq!(l.all()[n].item(req.as_str()), Some(item));
    }
    // Nor when it arrives before the item it names (written apart from it, on purpose).
    let (mut l2, req2) = (life(), iid(6));
    let early = open_reply(&mut l2.dan, &req2, iid(7), "early");
    let asked = l2
        .ann
        .ask_to(&req2, &meals("Private", None), &[l2.b.clone()], T0)
        .unwrap();
    l2.bob.apply_changes(std::slice::from_ref(&early)).unwrap();
    l2.bob.apply_changes(std::slice::from_ref(&asked)).unwrap();
    l2.log.extend([early, asked]);
    let item = l2.bob.item(req2.as_str()).unwrap();
    assert!(item.replies.is_empty(), "{:?}", item.replies);
    assert_eq!(l2.fresh(1).item(req2.as_str()), Some(item));
    assert!(l2.bob.items().iter().all(|i| i.replies.is_empty()));

    // A sealed reply shows.
    let sealed = l.cat.reply(&req, &iid(4), "sealed", T0 + 2).unwrap();
    deliver(&[sealed], &mut [&mut l.ann]);
    let replies = l.ann.item(req.as_str()).unwrap().replies;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].text, "sealed");
}

type Forgery = fn(&mut automerge::AutoCommit, &Places);

/// What the forgeries aim at: Ann's one-off request (Cat claimed it with a message and Ann
/// thanked her), her recurring need (Cat holds slot 1), her offer (Cat accepted), her
/// check-in, her nudge to Cat, and Cat's roster entry (with quiet hours).
struct Places {
    once: String,
    slots: String,
    offer: String,
    checkin: String,
    nudge: String,
    cat: String,
    bob: String,
}

fn item_obj(doc: &automerge::AutoCommit, container: &str, id: &str) -> automerge::ObjId {
    map_at(doc, &map_at(doc, &automerge::ROOT, container), id)
}

fn forgery_setup() -> (Life, Places) {
    let mut l = life();
    let p = Places {
        once: iid(1).to_string(),
        slots: iid(2).to_string(),
        offer: iid(3).to_string(),
        checkin: iid(4).to_string(),
        nudge: iid(5).to_string(),
        cat: l.c.clone(),
        bob: l.b.clone(),
    };
    let changes = [
        l.ann.ask(&iid(1), &meals("Meals", None), T0).unwrap(),
        l.ann
            .ask(
                &iid(2),
                &recurring("Runs", vec![T0 + DAY, T0 + 2 * DAY]),
                T0,
            )
            .unwrap(),
        l.ann.offer(&iid(3), &soup_offer(), &[], T0).unwrap(),
        l.ann.checkin(&iid(4), Mood::Okay, None, T0).unwrap(),
        l.ann.nudge(&iid(5), &l.c.clone(), Some("hey"), T0).unwrap(),
    ];
    l.share(&changes);
    let changes = [
        l.cat
            .claim_with(&iid(1), None, Some("soup"), T0 + 1)
            .unwrap(),
        l.cat
            .claim_with(&iid(2), Some("1"), Some("monday"), T0 + 1)
            .unwrap(),
        l.cat
            .claim_with(&iid(3), None, Some("yes please"), T0 + 1)
            .unwrap(),
        l.cat.set_my_quiet_hours(Some("22-7"), T0 + 1).unwrap(),
    ];
    l.share(&changes);
    let thanks = l
        .ann
        .thank(
            &iid(1),
            std::slice::from_ref(&l.c),
            Some("thank you"),
            T0 + 2,
        )
        .unwrap();
    l.share(&[thanks]);
    (l, p)
}

/// A member's daemon writes raw changes into the new places of other members' items and
/// entries; every other member refuses each one, counts it, and shows nothing new.
#[test]
fn forged_writes_in_the_new_places_are_refused() {
    let forgeries: Vec<(&str, Forgery)> = vec![
        ("withdraws Ann's offer", |doc, p| {
            let o = item_obj(doc, schema::OFFERS, &p.offer);
            doc.put(&o, schema::STATUS, "withdrawn").unwrap();
        }),
        ("retitles Ann's offer", |doc, p| {
            let o = item_obj(doc, schema::OFFERS, &p.offer);
            doc.put(&o, "t", "Bob's soup").unwrap();
        }),
        ("replaces Ann's offer", |doc, p| {
            let offers = map_at(doc, &automerge::ROOT, schema::OFFERS);
            let o = doc.put_object(&offers, &p.offer, ObjType::Map).unwrap();
            doc.put(&o, "t", "mine").unwrap();
        }),
        ("takes back Cat's acceptance of the offer", |doc, p| {
            let o = item_obj(doc, schema::OFFERS, &p.offer);
            let claims = map_at(doc, &o, schema::CLAIMS);
            doc.delete(&claims, &p.cat).unwrap();
        }),
        ("rewrites Cat's acceptance message", |doc, p| {
            let o = item_obj(doc, schema::OFFERS, &p.offer);
            let claim = map_at(doc, &map_at(doc, &o, schema::CLAIMS), &p.cat);
            doc.put(&claim, schema::MESSAGE, "never mind").unwrap();
        }),
        ("adds slots to Ann's offer", |doc, p| {
            let o = item_obj(doc, schema::OFFERS, &p.offer);
            doc.put_object(&o, schema::SLOTS, ObjType::Map).unwrap();
        }),
        ("adds a slot to Ann's request", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slots = map_at(doc, &r, schema::SLOTS);
            let slot = doc.put_object(&slots, "3", ObjType::Map).unwrap();
            doc.put(&slot, "d", T0 + 3 * DAY).unwrap();
            doc.put_object(&slot, schema::CLAIMS, ObjType::Map).unwrap();
        }),
        ("moves a slot of Ann's request", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slot = map_at(doc, &map_at(doc, &r, schema::SLOTS), "2");
            doc.put(&slot, "d", T0 - DAY).unwrap();
        }),
        ("deletes a slot of Ann's request", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slots = map_at(doc, &r, schema::SLOTS);
            doc.delete(&slots, "2").unwrap();
        }),
        ("replaces a slot's claims map", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slot = map_at(doc, &map_at(doc, &r, schema::SLOTS), "1");
            doc.put_object(&slot, schema::CLAIMS, ObjType::Map).unwrap();
        }),
        ("gives up Cat's slot", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slot = map_at(doc, &map_at(doc, &r, schema::SLOTS), "1");
            let claims = map_at(doc, &slot, schema::CLAIMS);
            doc.delete(&claims, p.cat.as_str()).unwrap();
        }),
        ("claims a slot in Cat's name", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slot = map_at(doc, &map_at(doc, &r, schema::SLOTS), "2");
            let claims = map_at(doc, &slot, schema::CLAIMS);
            let claim = doc.put_object(&claims, &p.cat, ObjType::Map).unwrap();
            doc.put(&claim, "a", T0).unwrap();
        }),
        ("rewrites Cat's slot claim message", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let slot = map_at(doc, &map_at(doc, &r, schema::SLOTS), "1");
            let claim = map_at(doc, &map_at(doc, &slot, schema::CLAIMS), &p.cat);
            doc.put(&claim, schema::MESSAGE, "can't come").unwrap();
        }),
        ("rewrites Cat's claim message", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let claim = map_at(doc, &map_at(doc, &r, schema::CLAIMS), &p.cat);
            doc.put(&claim, schema::MESSAGE, "can't come").unwrap();
        }),
        ("seals a message onto Cat's claim", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let claim = map_at(doc, &map_at(doc, &r, schema::CLAIMS), &p.cat);
            doc.put(&claim, schema::SEALED_MESSAGE, vec![1_u8, 2, 3])
                .unwrap();
        }),
        ("deletes Cat's claim message", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let claim = map_at(doc, &map_at(doc, &r, schema::CLAIMS), &p.cat);
            doc.delete(&claim, schema::MESSAGE).unwrap();
        }),
        ("thanks itself on Ann's request", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let thanks = map_at(doc, &r, schema::THANKS);
            doc.put(&thanks, p.bob.as_str(), "from Ann").unwrap();
        }),
        ("rewrites Ann's thanks to Cat", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let thanks = map_at(doc, &r, schema::THANKS);
            doc.put(&thanks, p.cat.as_str(), "meh").unwrap();
        }),
        ("deletes Ann's thanks to Cat", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.once);
            let thanks = map_at(doc, &r, schema::THANKS);
            doc.delete(&thanks, p.cat.as_str()).unwrap();
        }),
        ("makes a thanks map on Ann's request", |doc, p| {
            let r = item_obj(doc, schema::REQUESTS, &p.slots);
            let thanks = doc.put_object(&r, schema::THANKS, ObjType::Map).unwrap();
            doc.put(&thanks, p.cat.as_str(), "").unwrap();
        }),
        ("writes into Ann's nudge", |doc, p| {
            let n = item_obj(doc, schema::NUDGES, &p.nudge);
            doc.put(&n, "c", 0_i64).unwrap();
        }),
        ("replaces the sealed content of Ann's nudge", |doc, p| {
            let n = item_obj(doc, schema::NUDGES, &p.nudge);
            doc.put(&n, schema::SEALED, vec![0_u8; 64]).unwrap();
        }),
        ("deletes Ann's nudge", |doc, p| {
            let nudges = map_at(doc, &automerge::ROOT, schema::NUDGES);
            doc.delete(&nudges, &p.nudge).unwrap();
        }),
        ("makes a claims map on Ann's check-in", |doc, p| {
            let c = item_obj(doc, schema::CHECKINS, &p.checkin);
            let claims = doc.put_object(&c, schema::CLAIMS, ObjType::Map).unwrap();
            let claim = doc.put_object(&claims, &p.bob, ObjType::Map).unwrap();
            doc.put(&claim, "a", T0).unwrap();
        }),
        ("sets Cat's quiet hours", |doc, p| {
            let entry = map_at(doc, &map_at(doc, &automerge::ROOT, schema::MEMBERS), &p.cat);
            doc.put(&entry, schema::QUIET, "never").unwrap();
        }),
        ("clears Cat's quiet hours", |doc, p| {
            let entry = map_at(doc, &map_at(doc, &automerge::ROOT, schema::MEMBERS), &p.cat);
            doc.delete(&entry, schema::QUIET).unwrap();
        }),
    ];
    for (what, forge) in forgeries {
        let (mut l, places) = forgery_setup();
        let forged = raw_edit(&mut l.bob, |doc| forge(doc, &places));
        for c in [&mut l.ann, &mut l.cat, &mut l.dan] {
            let (rejected, items, members) = (c.rejected_count(), c.items(), c.members());
            assert!(
                c.apply_changes(std::slice::from_ref(&forged)).is_err(),
                "accepted: Bob {what}"
            );
            assert_eq!(c.rejected_count(), rejected + 1, "Bob {what}");
            assert_eq!((c.items(), c.members()), (items, members), "Bob {what}");
            let new = c.rejections_since(rejected);
            assert_eq!(new.len(), 1, "Bob {what}");
            assert_eq!(new[0].writer, l.b, "Bob {what}");
        }
    }
}

/// Every honest edit of the new kinds passes the rules at every other member.
#[test]
fn honest_edits_of_the_new_kinds_pass_the_rules() {
    let (mut l, p) = forgery_setup();
    let (once, slots, offer) = (
        ItemId::parse(&p.once).unwrap(),
        ItemId::parse(&p.slots).unwrap(),
        ItemId::parse(&p.offer).unwrap(),
    );
    let changes = [
        l.bob
            .claim_with(&slots, Some("2"), Some("tue"), T0 + 3)
            .unwrap(),
        l.bob.claim_with(&offer, None, None, T0 + 3).unwrap(),
        l.cat
            .claim_with(&once, None, Some("soup+bread"), T0 + 3)
            .unwrap(),
        l.cat.unclaim_slot(&slots, Some("1"), T0 + 3).unwrap(),
        l.ann
            .edit(
                &once,
                &ItemEdit {
                    details: Some("no nuts".into()),
                    ..ItemEdit::default()
                },
                T0 + 3,
            )
            .unwrap(),
        l.dan.set_my_quiet_hours(Some("21-8"), T0 + 3).unwrap(),
    ];
    l.share(&changes);
    let changes = [
        l.ann
            .thank(&slots, std::slice::from_ref(&l.b), None, T0 + 4)
            .unwrap(),
        l.ann.done(&once, T0 + 4).unwrap(),
        l.ann.cancel(&offer, T0 + 4).unwrap(),
        l.cat.nudge(&iid(9), &l.a.clone(), None, T0 + 4).unwrap(),
    ];
    l.share(&changes);
    for c in l.all() {
        assert_eq!(c.rejected_count(), 0);
    }
    for n in 0..4 {
        assert_eq!(l.fresh(n).items(), l.all()[n].items(), "{n}");
    }
}

/// The new kinds of change stay small; printed for docs/document.md.
#[test]
fn sizes_of_the_new_changes() {
    let mut l = life();
    let note = "long day, ok now.!";
    let private = l
        .ann
        .post_checkin(
            &iid(1),
            &NewCheckin {
                mood: Mood::Low,
                note: Some(note.into()),
                help: None,
            },
            std::slice::from_ref(&l.b),
            T0,
        )
        .unwrap();
    let slots: Vec<i64> = (1..=9).map(|d| T0 + d * DAY).collect();
    let train = l
        .ann
        .ask(
            &iid(2),
            &NewRequest {
                kind: HelpKind::Meals,
                title: "Meals after surgery".into(),
                slots,
                ..NewRequest::default()
            },
            T0,
        )
        .unwrap();
    let offer = l
        .ann
        .offer(
            &iid(3),
            &NewOffer {
                kind: HelpKind::Childcare,
                title: "Tuesday school pickups".into(),
                when: Some("Tuesdays 3 pm".into()),
                ..NewOffer::default()
            },
            &[],
            T0,
        )
        .unwrap();
    l.share(&[private.clone(), train.clone(), offer.clone()]);
    let claim = l
        .bob
        .claim_with(&iid(2), Some("3"), Some("lasagne, 6 pm"), T0)
        .unwrap();
    let nudge = l.bob.nudge(&iid(4), &l.a.clone(), None, T0).unwrap();
    eprintln!(
        "change sizes: private check-in (one reader) {} B, 9-slot meal train {} B, offer {} B, \
         slot claim with message {} B, nudge {} B",
        private.len(),
        train.len(),
        offer.len(),
        claim.len(),
        nudge.len()
    );
    // Two key slots (81 B each) and the sealed body's 73 B of overhead.
    for c in [&private, &nudge] {
        assert!(c.len() <= 600, "{} bytes", c.len());
    }
    assert!(train.len() <= 600, "{}", train.len());
    for c in [&offer, &claim] {
        assert!(c.len() <= 300, "{} bytes", c.len());
    }
}

/// After a reader of a private item is removed, its author renews the item's key for the
/// remaining readers: parts written from then on are sealed under the new key, which the
/// removed reader, who kept the first key and receives every change, cannot open.
#[test]
fn a_removed_readers_private_item_gets_a_new_key() {
    let mut l = life();
    let (a, b, c, d) = (l.a.clone(), l.b.clone(), l.c.clone(), l.d.clone());
    let item = iid(40);
    let checkin = l
        .ann
        .post_checkin(
            &item,
            &NewCheckin {
                mood: Mood::Low,
                note: Some("FOR-BOB-AND-DAN".into()),
                help: None,
            },
            &[b.clone(), d.clone()],
            T0,
        )
        .unwrap();
    l.share(&[checkin]);
    let before = l
        .bob
        .reply(&item, &iid(41), "EARLIER-REPLY", T0 + 1)
        .unwrap();
    l.share(&[before]);
    assert_eq!(l.dan.item(item.as_str()).unwrap().replies.len(), 1);
    // Nothing to renew while nobody has been removed.
    assert_eq!(l.ann.renew_private_keys().unwrap(), None);

    let epoch = NewEpoch {
        id: 77,
        generation: 1,
        commitment: [1; 32],
        wraps: [&a, &b, &c]
            .iter()
            .map(|m| ((*m).clone(), vec![7; WRAPPED_LEN]))
            .collect(),
    };
    let RemoveOutcome::Removed(removal) = l
        .ann
        .remove_member(&d, &epoch, "removal01", T0 + 2)
        .unwrap()
    else {
        panic!("a policy of one removes at once");
    };
    l.share(&[removal]);
    let renewal = l.ann.renew_private_keys().unwrap().expect("a renewal");
    l.share(&[renewal]);
    // Renewed once per removal: nothing more to do.
    assert_eq!(l.ann.renew_private_keys().unwrap(), None);
    assert_eq!(
        l.bob.renew_private_keys().unwrap(),
        None,
        "only authors renew"
    );

    let after = l.bob.reply(&item, &iid(42), "LATER-REPLY", T0 + 3).unwrap();
    l.share(std::slice::from_ref(&after));
    for reader in [&l.ann, &l.bob] {
        let replies = reader.item(item.as_str()).unwrap().replies;
        let texts: Vec<&str> = replies.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["EARLIER-REPLY", "LATER-REPLY"]);
    }
    // Dan kept the item and the earlier reply, not the later one: it is sealed under a key
    // he never got, although his document holds its bytes.
    let dans = l.dan.item(item.as_str()).unwrap();
    let texts: Vec<&str> = dans.replies.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["EARLIER-REPLY"]);
    assert!(!contains(&after, "LATER-REPLY"));
    // Everyone rebuilt from the log reads the same.
    assert_eq!(l.fresh(1).item(item.as_str()).unwrap().replies.len(), 2);
    assert_eq!(l.fresh(3).item(item.as_str()).unwrap().replies.len(), 1);

    // Only the author renews, only once per generation.
    let forged = raw_edit(&mut l.bob, |doc| {
        let obj = item_obj(doc, "c", item.as_str());
        let map = map_at(doc, &obj, "xr");
        doc.put(&map, "2", vec![0u8; 10]).unwrap();
    });
    let overwrite = raw_edit(&mut l.ann, |doc| {
        let obj = item_obj(doc, "c", item.as_str());
        let map = map_at(doc, &obj, "xr");
        doc.put(&map, "1", vec![0u8; 10]).unwrap();
    });
    for change in [forged, overwrite] {
        let before = l.cat.rejected_count();
        let _ = l.cat.apply_changes(std::slice::from_ref(&change));
        assert_eq!(l.cat.rejected_count(), before + 1);
    }
}
