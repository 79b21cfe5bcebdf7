//! Many nodes in one process, one circle, over a lossy in-memory network.
//!
//! Each seed builds 3 to 8 honest nodes (ant, bat, cat, ...) with their own identities;
//! they write envelopes and sync over a network that drops 20 % of messages, duplicates
//! and reorders them. Some seeds add a hostile node that sends garbage, forged signatures,
//! envelopes for other circles, unknown circles and (when it is a member) its own forked
//! and gapped chains. In some seeds honest nodes only talk to their neighbours in a line, so
//! envelopes must travel through others, and in some one member joins the roster only
//! halfway (its envelopes wait as unknown authors until then).
//! After a quiescent phase of full exchanges every honest node must hold
//! the same envelopes of every honest author, no honest peer may have been counted for an
//! offence, and every message of the hostile node that is sure to be an offence must have
//! been counted as one.
//!
//! `KITH_SYNC_SEEDS=100000 cargo test -p kith-sync --release --test simulation` runs more
//! seeds (default 2000); `KITH_SYNC_FIRST_SEED` moves the range.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, Hash, MemberId};
use kith_sync::{EnvelopeSource, Message, SyncEngine};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Default, Clone)]
struct Store(BTreeMap<(MemberId, u64), Envelope>);

impl EnvelopeSource for Store {
    fn envelope(&self, _: &CircleId, author: &MemberId, seq: u64) -> Option<Envelope> {
        self.0.get(&(*author, seq)).cloned()
    }
}

struct Node {
    identity: DeviceIdentity,
    engine: SyncEngine<usize>,
    store: Store,
    seq: u64,
    prev: Hash,
    /// Peers this node has disconnected for misbehaviour.
    banned: BTreeSet<usize>,
    /// Only for kith-core runs: the circle document and applied payloads.
    doc: Option<kith_core::Circle>,
}

struct Packet {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
    /// Whether handling it must count an offence against the sender.
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Honest traffic, and hostile messages an honest peer could send too.
    NoOffence,
    /// A hostile message that is an offence whatever state the receiver is in.
    Offence,
    /// A mutated message: it may or may not still be valid.
    Either,
}

struct Sim {
    rng: StdRng,
    circle: CircleId,
    key: EpochKey,
    nodes: Vec<Node>,
    /// Index of the hostile node, if any (always the last).
    hostile: Option<usize>,
    roster: BTreeSet<MemberId>,
    queue: Vec<Packet>,
    now: u64,
    drop_rate: f64,
    dup_rate: f64,
    /// Envelopes the hostile node has seen, to tamper with.
    loot: Vec<Envelope>,
    hostile_offences_delivered: usize,
    /// Honest nodes talk only to their neighbours in a line (0-1-2-...), so envelopes must
    /// travel through others; the hostile node talks to everyone.
    line: bool,
    /// An honest node the roster lists only from the middle of the run (its add-member
    /// operation arrives late); until then its envelopes wait as unknown authors.
    late: Option<usize>,
}

impl Sim {
    fn new(seed: u64, honest: usize, hostile: bool, hostile_member: bool) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let circle = CircleId::random(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let count = honest + usize::from(hostile);
        let nodes: Vec<Node> = (0..count)
            .map(|_| {
                let mut engine = SyncEngine::new();
                engine.join(circle);
                Node {
                    identity: DeviceIdentity::generate(&mut rng),
                    engine,
                    store: Store::default(),
                    seq: 0,
                    prev: [0; 32],
                    banned: BTreeSet::new(),
                    doc: None,
                }
            })
            .collect();
        let mut roster: BTreeSet<MemberId> = nodes[..honest]
            .iter()
            .map(|n| n.identity.member_id())
            .collect();
        if hostile && hostile_member {
            roster.insert(nodes[honest].identity.member_id());
        }
        Sim {
            rng,
            circle,
            key,
            nodes,
            hostile: hostile.then_some(honest),
            roster,
            queue: Vec::new(),
            now: 0,
            drop_rate: 0.2,
            dup_rate: 0.1,
            loot: Vec::new(),
            hostile_offences_delivered: 0,
            line: false,
            late: None,
        }
    }

    /// Whether `a` and `b` ever talk directly.
    fn linked(&self, a: usize, b: usize) -> bool {
        a != b
            && (!self.line
                || Some(a) == self.hostile
                || Some(b) == self.hostile
                || a.abs_diff(b) == 1)
    }

    /// Takes `who` out of the roster until [`Sim::grow_roster`].
    fn make_late(&mut self, who: usize) {
        self.roster.remove(&self.nodes[who].identity.member_id());
        self.late = Some(who);
    }

    /// The late member's add-member operation reaches everyone: each honest node
    /// re-checks what it held back, and stores what is now accepted.
    fn grow_roster(&mut self) {
        let Some(late) = self.late.take() else {
            return;
        };
        self.roster.insert(self.nodes[late].identity.member_id());
        for i in self.honest() {
            let roster = &self.roster;
            let node = &mut self.nodes[i];
            let released = node
                .engine
                .roster_changed(&self.circle, |m| roster.contains(m));
            assert_eq!(released.offences().count(), 0);
            for env in released.accepted {
                node.store
                    .0
                    .insert((env.header.author, env.header.seq), env);
            }
        }
    }

    fn honest(&self) -> std::ops::Range<usize> {
        0..self.hostile.unwrap_or(self.nodes.len())
    }

    fn send(&mut self, from: usize, to: usize, message: &Message) {
        let bytes = message
            .encode()
            .expect("the engine only makes valid messages");
        self.send_bytes(from, to, bytes, Expect::NoOffence);
    }

    fn send_bytes(&mut self, from: usize, to: usize, bytes: Vec<u8>, expect: Expect) {
        if self.nodes[from].banned.contains(&to) || self.rng.random_bool(self.drop_rate) {
            return;
        }
        self.queue.push(Packet {
            from,
            to,
            bytes,
            expect,
        });
    }

    /// An honest node writes one envelope and pushes it to everyone.
    fn append(&mut self, who: usize, plaintext: &[u8]) {
        let node = &mut self.nodes[who];
        let env = Envelope::seal(
            &node.identity,
            &self.key,
            self.circle,
            node.seq + 1,
            node.prev,
            0,
            plaintext,
            &mut self.rng,
        )
        .unwrap();
        node.seq += 1;
        node.prev = env.hash();
        node.store
            .0
            .insert((env.header.author, env.header.seq), env.clone());
        let push = node
            .engine
            .circle_mut(&self.circle)
            .unwrap()
            .local_append(env)
            .unwrap();
        for to in 0..self.nodes.len() {
            if self.linked(who, to) {
                self.send(who, to, &push);
            }
        }
    }

    fn hello(&mut self, from: usize, to: usize) {
        for message in self.nodes[from].engine.hellos() {
            self.send(from, to, &message);
        }
    }

    fn deliver(&mut self, index: usize) {
        let packet = if self.rng.random_bool(self.dup_rate) {
            let p = &self.queue[index];
            Packet {
                from: p.from,
                to: p.to,
                bytes: p.bytes.clone(),
                expect: p.expect,
            }
        } else {
            self.queue.swap_remove(index)
        };
        let (from, to) = (packet.from, packet.to);
        if Some(to) == self.hostile {
            // The hostile node only listens to learn envelopes it can tamper with.
            if let Ok(Message::Envelopes { envelopes, .. }) = Message::decode(&packet.bytes)
                && self.loot.len() < 64
            {
                self.loot.extend(envelopes);
            }
            return;
        }
        if self.nodes[to].banned.contains(&from) {
            return;
        }
        let roster = &self.roster;
        let now = self.now;
        let node = &mut self.nodes[to];
        let handled = node
            .engine
            .handle(&from, &packet.bytes, now, &node.store, |_, m| {
                roster.contains(m)
            });
        match packet.expect {
            Expect::Offence => {
                self.hostile_offences_delivered += 1;
                assert!(handled.offence.is_some(), "hostile message not counted");
            }
            Expect::NoOffence => {
                assert_eq!(handled.offence, None, "offence counted for {from} -> {to}");
            }
            Expect::Either => {}
        }
        // Store durably, then reply, then apply.
        for env in &handled.accepted {
            node.store
                .0
                .insert((env.header.author, env.header.seq), env.clone());
        }
        if let Some(doc) = node.doc.as_mut() {
            let changes: Vec<Vec<u8>> = handled
                .accepted
                .iter()
                .filter_map(|env| env.open(&self.key).ok())
                .filter_map(|plain| match kith_core::Payload::decode(&plain).unwrap() {
                    kith_core::Payload::Change(body) => Some(body),
                    kith_core::Payload::Keys(_) => None,
                })
                .collect();
            doc.apply_changes(&changes).unwrap();
        }
        if handled.disconnect {
            node.banned.insert(from);
        }
        for reply in handled.replies {
            self.send(to, from, &reply);
        }
    }

    /// One misdeed of the hostile node against a random honest node.
    fn misbehave(&mut self, hostile: usize) {
        let to = self.rng.random_range(self.honest());
        let circle = self.circle;
        let envelopes = |envelopes| {
            Message::Envelopes {
                circle,
                more: false,
                envelopes,
            }
            .encode()
            .unwrap()
        };
        match self.rng.random_range(0..7u8) {
            0 => {
                let len = self.rng.random_range(0..200);
                let mut garbage = vec![0; len];
                self.rng.fill(&mut garbage[..]);
                self.send_bytes(hostile, to, garbage, Expect::Offence);
            }
            1 if !self.loot.is_empty() => {
                let pick = self.rng.random_range(0..self.loot.len());
                let mut forged = self.loot[pick].clone();
                let at = self.rng.random_range(0..forged.ciphertext.len());
                forged.ciphertext[at] ^= 1 << self.rng.random_range(0..8);
                self.send_bytes(hostile, to, envelopes(vec![forged]), Expect::Offence);
            }
            2 if !self.loot.is_empty() => {
                // Claimed by someone else: the signature is the original author's.
                let pick = self.rng.random_range(0..self.loot.len());
                let mut stolen = self.loot[pick].clone();
                let me = self.nodes[hostile].identity.member_id();
                if stolen.header.author != me {
                    stolen.header.author = me;
                    self.send_bytes(hostile, to, envelopes(vec![stolen]), Expect::Offence);
                }
            }
            3 => {
                let other = CircleId::random(&mut self.rng);
                let env = Envelope::seal(
                    &self.nodes[hostile].identity,
                    &self.key,
                    other,
                    1,
                    [0; 32],
                    0,
                    b"elsewhere",
                    &mut self.rng,
                )
                .unwrap();
                self.send_bytes(hostile, to, envelopes(vec![env]), Expect::Offence);
                let vector = Message::Vector {
                    circle: other,
                    heads: vec![],
                };
                self.send_bytes(hostile, to, vector.encode().unwrap(), Expect::Offence);
            }
            4 => {
                // A valid message with one byte changed: whatever it decodes to, if anything.
                let mut bytes = self.nodes[to].engine.hellos()[0].encode().unwrap();
                let at = self.rng.random_range(0..bytes.len());
                bytes[at] ^= self.rng.random_range(1..=255u8);
                self.send_bytes(hostile, to, bytes, Expect::Either);
            }
            _ => {
                // Its own validly signed envelopes: random seqs and prevs, forks, gaps.
                // Only a member's are chained; a stranger's wait as unknown authors.
                let seq = self.rng.random_range(1..6u64);
                let prev = if seq == 1 {
                    [0; 32]
                } else {
                    let mut prev = [0; 32];
                    self.rng.fill(&mut prev[..]);
                    // Sometimes the real previous one, so chains grow and then fork.
                    match self.nodes[to]
                        .store
                        .0
                        .get(&(self.nodes[hostile].identity.member_id(), seq - 1))
                    {
                        Some(held) if self.rng.random_bool(0.7) => held.hash(),
                        _ => prev,
                    }
                };
                let env = Envelope::seal(
                    &self.nodes[hostile].identity,
                    &self.key,
                    self.circle,
                    seq,
                    prev,
                    0,
                    &[self.rng.random::<u8>(); 3],
                    &mut self.rng,
                )
                .unwrap();
                self.send_bytes(hostile, to, envelopes(vec![env]), Expect::NoOffence);
            }
        }
    }

    /// The chaotic phase: writes, hellos, deliveries, misdeeds, in random order.
    fn chaos(
        &mut self,
        steps: usize,
        max_writes: u64,
        payload: &mut dyn FnMut(&mut Sim, usize) -> Vec<u8>,
    ) {
        let honest = self.honest();
        for step in 0..steps {
            if step == steps / 2 {
                self.grow_roster();
            }
            self.now += self.rng.random_range(0..50);
            let roll = self.rng.random_range(0..100);
            if roll < 20 {
                let who = self.rng.random_range(honest.clone());
                if self.nodes[who].seq < max_writes {
                    let plaintext = payload(self, who);
                    self.append(who, &plaintext);
                }
            } else if roll < 40 {
                let from = self.rng.random_range(honest.clone());
                let to = self.rng.random_range(0..self.nodes.len());
                if self.linked(from, to) {
                    self.hello(from, to);
                }
            } else if roll < 90 {
                if !self.queue.is_empty() {
                    let index = self.rng.random_range(0..self.queue.len());
                    self.deliver(index);
                }
            } else if let Some(hostile) = self.hostile {
                self.misbehave(hostile);
            }
        }
    }

    /// The quiescent phase: no loss, no hostile node; every pair exchanges vectors until
    /// nothing moves. Returns the number of rounds it took.
    fn settle(&mut self) -> usize {
        self.grow_roster();
        self.drop_rate = 0.0;
        self.dup_rate = 0.0;
        // Whatever is still in flight arrives, in random order.
        while !self.queue.is_empty() {
            let index = self.rng.random_range(0..self.queue.len());
            self.deliver(index);
        }
        for round in 1..=20 {
            let before = self.fingerprint();
            let honest = self.honest();
            for from in honest.clone() {
                for to in honest.clone() {
                    if self.linked(from, to) {
                        self.hello(from, to);
                    }
                }
            }
            while !self.queue.is_empty() {
                self.deliver(0);
            }
            if self.fingerprint() == before {
                return round;
            }
        }
        panic!("no quiescence after 20 rounds of full exchanges");
    }

    fn fingerprint(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.store.0.len()).collect()
    }

    fn check(&self) {
        let honest = self.honest();
        let authors: BTreeSet<MemberId> = honest
            .clone()
            .filter(|&i| self.nodes[i].seq > 0)
            .map(|i| self.nodes[i].identity.member_id())
            .collect();
        let view = |node: &Node| -> Vec<(MemberId, u64, Hash)> {
            node.store
                .0
                .values()
                .filter(|e| authors.contains(&e.header.author))
                .map(|e| (e.header.author, e.header.seq, e.hash()))
                .collect()
        };
        let expected: usize = honest.clone().map(|i| self.nodes[i].seq as usize).sum();
        let first = view(&self.nodes[0]);
        assert_eq!(first.len(), expected, "node 0 misses envelopes");
        for i in honest.clone() {
            let node = &self.nodes[i];
            assert_eq!(view(node), first, "node {i} differs from node 0");
            let state = node.engine.circle(&self.circle).unwrap();
            let heads: Vec<_> = state
                .heads()
                .into_iter()
                .filter(|h| authors.contains(&h.author))
                .collect();
            let first_heads: Vec<_> = self.nodes[0]
                .engine
                .circle(&self.circle)
                .unwrap()
                .heads()
                .into_iter()
                .filter(|h| authors.contains(&h.author))
                .collect();
            assert_eq!(heads, first_heads, "node {i} heads differ");
            for j in honest.clone() {
                assert!(
                    node.engine.offences().totals(&j).is_empty(),
                    "node {i} counted offences against honest node {j}"
                );
            }
            if self.hostile.is_none() {
                assert_eq!(state.pending_len(), 0, "node {i} still holds pending");
                assert!(state.evidence().is_empty());
            }
        }
    }
}

fn seeds() -> std::ops::Range<u64> {
    let var = |name, default| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let first = var("KITH_SYNC_FIRST_SEED", 0);
    first..first + var("KITH_SYNC_SEEDS", 2000)
}

fn run_seed(seed: u64) -> usize {
    let mut pick = StdRng::seed_from_u64(seed ^ 0x5eed);
    let honest = pick.random_range(3..=8);
    let hostile = seed % 4 == 3;
    let hostile_member = hostile && seed % 8 == 7;
    let mut sim = Sim::new(seed, honest, hostile, hostile_member);
    sim.line = seed % 5 == 1;
    if seed % 3 == 2 {
        let late = pick.random_range(1..honest);
        sim.make_late(late);
    }
    let steps = pick.random_range(50..250);
    let max_writes = pick.random_range(1..=4);
    sim.chaos(steps, max_writes, &mut |sim, who| {
        let mut text = vec![0u8; sim.rng.random_range(0..64)];
        text.extend_from_slice(&(who as u64).to_le_bytes());
        text
    });
    let rounds = sim.settle();
    sim.check();
    if hostile {
        // The hostile node's sure offences were all counted (asserted at delivery).
        let counted: u64 = sim
            .honest()
            .map(|i| {
                sim.nodes[i]
                    .engine
                    .offences()
                    .totals(&sim.hostile.unwrap())
                    .values()
                    .sum::<u64>()
            })
            .sum();
        assert!(counted as usize >= sim.hostile_offences_delivered.min(1));
    }
    rounds
}

#[test]
fn nodes_converge_over_a_lossy_network_with_a_hostile_peer() {
    let seeds = seeds();
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8) as u64;
    let total = seeds.end - seeds.start;
    let max_rounds = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let seeds = seeds.clone();
                scope.spawn(move || {
                    seeds
                        .filter(|s| s % threads == t)
                        .map(|seed| {
                            std::panic::catch_unwind(|| run_seed(seed))
                                .unwrap_or_else(|_| panic!("seed {seed} failed"))
                        })
                        .max()
                        .unwrap_or(0)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or(0)
    });
    eprintln!(
        "{total} seeds in {:.1?} on {threads} threads; at most {max_rounds} settle rounds",
        started.elapsed()
    );
}

/// Real kith-core changes inside the envelopes: every node's document ends up with the
/// same items, and the founder's genesis and roster travel through sync like anything else.
#[test]
fn kith_core_documents_converge() {
    for seed in 0..12u64 {
        let honest = 3 + (seed % 3) as usize;
        let mut sim = Sim::new(1_000_000 + seed, honest, false, false);
        let ids: Vec<String> = sim
            .nodes
            .iter()
            .map(|n| kith_core::member_id(&n.identity.member_id().0))
            .collect();
        let (mut founder, genesis) =
            kith_core::Circle::found(&ids[0], "Ant", "Tuesday people", 1_000).unwrap();
        let mut setup = vec![genesis];
        for (i, id) in ids.iter().enumerate().skip(1) {
            let name = format!("member {i}");
            setup.push(
                founder
                    .add_member(id, &name, kith_core::Role::Member, 1_000)
                    .unwrap(),
            );
        }
        // The founder's setup changes are its first envelopes; the others start from an
        // invite that carried them (out of band here).
        for change in &setup {
            let plaintext = kith_core::Payload::Change(change.clone()).encode();
            sim.append(0, &plaintext);
        }
        sim.queue.clear();
        sim.nodes[0].doc = Some(founder);
        for (i, id) in ids.iter().enumerate().skip(1) {
            sim.nodes[i].doc = Some(kith_core::Circle::load(id, &setup).unwrap());
        }
        let mut items = 0u64;
        sim.chaos(200, 50, &mut |sim, who| {
            items += 1;
            let mut id = [0u8; 8];
            sim.rng.fill(&mut id[..]);
            let doc = sim.nodes[who].doc.as_mut().unwrap();
            let change = doc
                .checkin(
                    &kith_core::ItemId::from_random(id),
                    kith_core::Mood::Okay,
                    Some("thinking of you all"),
                    2_000,
                )
                .unwrap();
            kith_core::Payload::Change(change).encode()
        });
        sim.settle();
        sim.check();
        let first = sim.nodes[0].doc.as_ref().unwrap().items();
        assert_eq!(first.len() as u64, items);
        for node in &sim.nodes {
            assert_eq!(node.doc.as_ref().unwrap().items(), first);
        }
    }
}
