//! The node's networking half: sync with other members, invites and joining.
//!
//! Everything here runs inside the node actor. Network calls that wait (a request to a peer,
//! a change of the allowed set) run in small tasks whose results come back to the actor as
//! [`Internal`] messages, so the actor never blocks on the network.
//!
//! Sync: on connect and every [`SYNC_INTERVAL`] each side sends, per shared circle, its
//! version vector; the answer carries what the asker lacks (see `kith-sync`). A new local
//! envelope is pushed to every connected member of its circle once it is durable. Received
//! envelopes are verified by `kith-sync`, stored, then decrypted and applied.
//!
//! Join (docs/protocol.md): the joiner signs `(circle, joiner, admitter)` with the invite's
//! authority key; any member holding the invite record checks it, writes the admission (a
//! durable envelope), and only then answers with the circle's epoch keys wrapped for the
//! newcomer.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use kith_core::{Circle, CoreError, ItemView, Payload};
use kith_crypto::{
    CircleId, Envelope, EpochKey, InviteCode, JoinSignature, MemberId, WrappedKey, decode_id,
    encode_id, invite_authority, unwrap_epoch_key, wrap_epoch_key,
};
use kith_ipc::{ErrorKind, Reply, Response};
use kith_net::{Multiaddr, NetHandle, PeerId, Protocol};
use kith_store::{CircleRecord, Store};
use kith_sync::join::{JoinAnswer, JoinRequest, WrappedEpoch, parse_join_request};
use kith_sync::{EnvelopeSource, Message, Offence, Outcome, Prechecked};
use tokio::sync::{mpsc, oneshot, watch};

use crate::epochs::{EpochKeys, KeyChangeKind, Opened};
use crate::keyring::CircleKeyring;
use crate::node::{CircleState, ItemEvent, Node, Refusal, now_ms};
use crate::views;

/// How often connected members compare what they hold while they differ; also the
/// node's timer period.
pub(crate) const SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The longest pause between comparisons with a peer. Each comparison that finds nothing
/// to send either way doubles the pause up to this; any difference, or a failed request,
/// brings it back to [`SYNC_INTERVAL`]. New posts are pushed at once regardless, so this
/// only bounds how long a lost push can go unnoticed while the connection stays up.
const SYNC_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// How long `kith join` waits, after admission, for the circle's history to arrive.
const JOIN_SETTLE: Duration = Duration::from_secs(20);

/// How long `kith join` tries to reach a member named in the invite.
const JOIN_REACH: Duration = Duration::from_secs(30);

/// How long one attempt at one contact may take before the next contact is tried: a
/// contact whose machine is asleep must not hold up the others for long.
const JOIN_ATTEMPT: Duration = Duration::from_secs(5);

/// Other members put into an invite beside the inviter, and addresses given for each.
const INVITE_OTHER_CONTACTS: usize = kith_crypto::MAX_INVITE_CONTACTS - 1;
const INVITE_OTHER_ADDRESSES: usize = 4;

/// What an admitter answers for an invite it does not hold (yet): another member may.
const UNKNOWN_INVITE: &str = "unknown invite (revoked, or not yet known to this member)";

/// How long a peer that reached the offence limit is kept out.
const BAN: Duration = Duration::from_secs(10 * 60);

/// Results of network tasks, back in the actor.
#[derive(Debug)]
pub(crate) enum Internal {
    /// The answer to a sync message we sent, decoded and its signatures checked.
    SyncAnswer {
        peer: PeerId,
        message: Box<Prechecked>,
    },
    /// A local envelope is durable: push it.
    Push { circle: CircleId, message: Message },
    /// A sync request to `peer` failed (timeout, connection lost).
    SyncFailed { peer: PeerId },
    /// A join attempt ended.
    JoinDone {
        code: Box<InviteCode>,
        /// Every contact of the invite that was made a join target for this attempt.
        contacts: Vec<PeerId>,
        result: Result<JoinReply, String>,
        reply: oneshot::Sender<Response>,
    },
}

/// A member named in an invite, as `kith join` asks it to admit this node.
#[derive(Debug)]
struct JoinContact {
    member: MemberId,
    peer: PeerId,
    addresses: Vec<Multiaddr>,
    /// The join request, its signature bound to this contact's peer id.
    request: Vec<u8>,
}

/// The contact that answered a join request for good, and what it said.
#[derive(Debug)]
pub(crate) struct JoinReply {
    member: MemberId,
    peer: PeerId,
    answer: JoinAnswer,
}

/// A `kith join` waiting for the circle's history to arrive.
#[derive(Debug)]
pub(crate) struct WaitingJoin {
    circle: CircleId,
    reply: oneshot::Sender<Response>,
    deadline: Instant,
}

/// The networking state the node carries.
#[derive(Debug)]
pub(crate) struct NetState {
    pub net: NetHandle,
    pub sync: kith_sync::SyncEngine<PeerId>,
    pub internal: mpsc::Sender<Internal>,
    /// The latest allowed set; a task applies it to the network actor in order.
    pub allowed: watch::Sender<HashSet<PeerId>>,
    pub connected: BTreeSet<PeerId>,
    pub listening: Vec<Multiaddr>,
    /// Members named in an invite we are joining through (while asking, every contact;
    /// once admitted, the admitter): allowed before they are in any roster.
    pub join_targets: HashSet<PeerId>,
    pub waiting_joins: Vec<WaitingJoin>,
    pub banned: HashMap<PeerId, Instant>,
    /// Addresses already given to the network actor.
    pub known_addresses: HashSet<(PeerId, Multiaddr)>,
    pub join_window: bool,
    /// Our addresses changed or a circle was added: publish them between requests.
    pub addresses_dirty: bool,
    /// Look after the circles' keys once the current request is submitted.
    pub keys_dirty: bool,
    /// When to next compare vectors with each connected peer, and the pause after that.
    pub next_hello: HashMap<PeerId, (Instant, Duration)>,
    /// When the first invite that keeps the join window open expires.
    pub join_window_expiry: Option<Instant>,
    /// When to look next whether a circle key is due for its scheduled rotation.
    pub next_key_check: Instant,
}

impl NetState {
    pub(crate) fn new(net: NetHandle, internal: mpsc::Sender<Internal>) -> NetState {
        let (allowed, mut changes) = watch::channel(HashSet::new());
        let applier = net.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let peers = changes.borrow_and_update().clone();
                if applier.set_allowed(peers).await.is_err() {
                    break;
                }
            }
        });
        NetState {
            net,
            sync: kith_sync::SyncEngine::new(),
            internal,
            allowed,
            connected: BTreeSet::new(),
            listening: Vec::new(),
            join_targets: HashSet::new(),
            waiting_joins: Vec::new(),
            banned: HashMap::new(),
            known_addresses: HashSet::new(),
            join_window: false,
            addresses_dirty: false,
            keys_dirty: false,
            next_hello: HashMap::new(),
            join_window_expiry: None,
            next_key_check: Instant::now(),
        }
    }
}

/// Envelopes served from the store.
struct Source<'a>(&'a Store);

impl EnvelopeSource for Source<'_> {
    fn envelope(&self, circle: &CircleId, author: &MemberId, seq: u64) -> Option<Envelope> {
        match self.0.envelope(circle, author, seq) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "reading an envelope to serve failed");
                None
            }
        }
    }
}

/// Whether `author` may write in `circle`: the roster lists them. While a circle we just
/// joined has not yet delivered the roster entry naming us (bootstrap), every validly signed
/// envelope is taken: the roster itself travels in those envelopes, and items by actors the
/// roster does not list are never shown.
/// Whether `author`'s envelopes in `circle` are taken: members, and members since removed
/// (what they wrote before their removal, and what others built on, must still arrive;
/// the circle's rules decide what of it counts). While this node is not in the roster yet
/// (joining), everyone's are.
fn member_of(circles: &[CircleState], circle: &CircleId, author: &MemberId) -> bool {
    let id = author.to_string();
    circles.iter().find(|c| c.id == *circle).is_some_and(|c| {
        let members = c.doc.members();
        members.iter().any(|m| m.id == id)
            || c.doc.is_removed(&id)
            || !members.iter().any(|m| m.id == c.doc.me()) && !c.doc.is_removed(c.doc.me())
    })
}

/// Envelopes kept in memory while their key is missing, per circle; more wait in the
/// store until the next start.
const MAX_LOCKED: usize = 10_000;

/// How long an epoch lasts before a steward rotates: a week, or `KITH_ROTATION_SECS` (for
/// tests and for people who want it shorter).
fn rotation_period_ms() -> i64 {
    std::env::var("KITH_ROTATION_SECS")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(crate::epochs::ROTATION_PERIOD_MS, |s| {
            s.saturating_mul(1000)
        })
}

fn peer_of(member: &str) -> Option<PeerId> {
    member.parse::<MemberId>().ok()?.to_peer_id().ok()
}

fn refused(reason: impl Into<String>) -> Vec<u8> {
    serde_json::to_vec(&JoinAnswer::Refused {
        reason: reason.into(),
    })
    .unwrap_or_default()
}

/// How a sync message is answered.
enum Answer {
    /// It was a request: the first reply is its response.
    Respond(oneshot::Sender<Vec<u8>>),
    /// It was the answer to our request: replies go out as new requests.
    Request,
}

impl Answer {
    /// Nothing to say: an inbound request gets an empty response.
    fn nothing(self) {
        if let Answer::Respond(respond) = self {
            let _ = respond.send(Vec::new());
        }
    }
}

/// Sends `message` to `peer` in a task; the answer comes back as [`Internal::SyncAnswer`].
///
/// During a catch-up the answer to a vector is a batch with more to come. The task asks for
/// the next batch at once (the vector we would hold after this one, see
/// [`Message::continuation`]) and checks this batch's signatures while that request is out,
/// so the peer serves, this node verifies and the node applies, all at the same time.
/// Answers reach the node in order; at most two batches are between the wire and the node.
fn send_sync(net: &NetHandle, internal: &mpsc::Sender<Internal>, peer: PeerId, message: &Message) {
    let Ok(bytes) = message.encode() else {
        return;
    };
    let net = net.clone();
    let internal = internal.clone();
    let mut asked = message.clone();
    tokio::spawn(async move {
        let mut bytes = bytes;
        let mut checking: Option<tokio::task::JoinHandle<Box<Prechecked>>> = None;
        loop {
            let answer = net.request(peer, Protocol::Sync, bytes).await;
            let next = match answer {
                Ok(answer) if !answer.is_empty() => {
                    let decoded = Message::decode(&answer);
                    let next = decoded
                        .as_ref()
                        .ok()
                        .and_then(|answer| asked.continuation(answer))
                        .and_then(|next| Some((next.encode().ok()?, next)));
                    let continued = next.is_some();
                    // Checking a batch's signatures is most of the work of receiving it:
                    // done off the node, it overlaps with the node applying the last one.
                    let check = tokio::task::spawn_blocking(move || {
                        let mut checked = Box::new(Prechecked::check(decoded));
                        if continued {
                            checked.mark_continued();
                        }
                        checked
                    });
                    if let Some(previous) = checking.replace(check) {
                        deliver(&internal, peer, previous).await;
                    }
                    next
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "sync request failed");
                    if let Some(previous) = checking.take() {
                        deliver(&internal, peer, previous).await;
                    }
                    let _ = internal.send(Internal::SyncFailed { peer }).await;
                    return;
                }
            };
            match next {
                Some((next_bytes, next)) => {
                    bytes = next_bytes;
                    asked = next;
                }
                None => break,
            }
        }
        if let Some(last) = checking.take() {
            deliver(&internal, peer, last).await;
        }
    });
}

/// Hands a checked answer to the node once its check is done.
async fn deliver(
    internal: &mpsc::Sender<Internal>,
    peer: PeerId,
    check: tokio::task::JoinHandle<Box<Prechecked>>,
) {
    if let Ok(message) = check.await {
        let _ = internal.send(Internal::SyncAnswer { peer, message }).await;
    }
}

impl Node {
    /// The peers of every member of every circle, and the inviters we are joining through.
    pub(crate) fn refresh_allowed(&mut self) {
        let me = self.member_id.to_string();
        let now = Instant::now();
        self.net.banned.retain(|_, until| *until > now);
        let mut peers: HashSet<PeerId> = self.net.join_targets.clone();
        let mut addresses = Vec::new();
        for circle in &self.circles {
            for member in circle.doc.members() {
                if member.id == me {
                    continue;
                }
                let Some(peer) = peer_of(&member.id) else {
                    continue;
                };
                if self.net.banned.contains_key(&peer) {
                    continue;
                }
                peers.insert(peer);
                for address in &member.addresses {
                    if let Ok(addr) = address.parse::<Multiaddr>() {
                        addresses.push((peer, addr));
                    }
                }
            }
        }
        self.net.allowed.send_if_modified(|current| {
            if *current == peers {
                false
            } else {
                *current = peers;
                true
            }
        });
        for (peer, addr) in addresses {
            if self.net.known_addresses.insert((peer, addr.clone())) {
                let net = self.net.net.clone();
                tokio::spawn(async move {
                    let _ = net.add_address(peer, addr).await;
                });
            }
        }
    }

    /// Opens the join window while any circle has an invite someone could still use, and
    /// notes when the first of them expires, so that the window closes on time.
    pub(crate) fn refresh_join_window(&mut self) {
        let now = now_ms();
        let first_expiry = self
            .circles
            .iter()
            .flat_map(|c| c.doc.invites())
            .filter(|i| !i.revoked && i.used < i.uses && i.expires_at > now)
            .map(|i| i.expires_at)
            .min();
        let open = first_expiry.is_some();
        self.net.join_window_expiry = first_expiry.map(|at| {
            // A millisecond past the expiry; never in the past, so the timer cannot spin.
            let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0) + 1;
            Instant::now() + Duration::from_millis(wait)
        });
        if open != self.net.join_window {
            self.net.join_window = open;
            let net = self.net.net.clone();
            if open {
                // Opened before the invite's code is handed out: a joiner who dials at once
                // must find the window open. The network actor answers in microseconds.
                let opened = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(net.set_join_window(true))
                });
                if let Err(e) = opened {
                    tracing::warn!(error = %e, "could not open the join window");
                }
            } else {
                tokio::spawn(async move {
                    let _ = net.set_join_window(false).await;
                });
            }
        }
    }

    /// Circles `peer` shares with us. A circle still bootstrapping (its roster does not
    /// list us yet) is shared with the inviters we are joining through.
    fn shared_circles(&self, peer: &PeerId) -> Vec<CircleId> {
        let Ok(member) = MemberId::from_peer_id(peer) else {
            return Vec::new();
        };
        let id = member.to_string();
        let inviter = self.net.join_targets.contains(peer);
        self.circles
            .iter()
            .filter(|c| {
                let members = c.doc.members();
                members.iter().any(|m| m.id == id)
                    || (inviter && !members.iter().any(|m| m.id == c.doc.me()))
            })
            .map(|c| c.id)
            .collect()
    }

    /// Sends our vector of every shared circle to `peer`.
    fn hello(&self, peer: PeerId) {
        for circle in self.shared_circles(&peer) {
            if let Some(state) = self.net.sync.circle(&circle) {
                send_sync(&self.net.net, &self.net.internal, peer, &state.vector());
            }
        }
    }

    pub(crate) fn on_net_event(&mut self, event: kith_net::NetEvent) {
        use kith_net::NetEvent;
        match event {
            NetEvent::Listening { addr } => {
                tracing::info!(%addr, "listening");
                if !self.net.listening.contains(&addr) {
                    self.net.listening.push(addr);
                }
                self.net.addresses_dirty = true;
            }
            NetEvent::Connected {
                peer, probation, ..
            } => {
                tracing::debug!(%peer, probation, "connected");
                if !probation {
                    self.net.connected.insert(peer);
                    self.hello(peer);
                    self.sync_soon(peer);
                }
            }
            NetEvent::Disconnected { peer } => {
                self.net.connected.remove(&peer);
                self.net.next_hello.remove(&peer);
            }
            NetEvent::Refused { peer } => {
                tracing::info!(%peer, "refused a peer that is not a member");
            }
            NetEvent::InboundRequest {
                peer,
                protocol: Protocol::Sync,
                bytes,
                respond,
            } => {
                if !self.shared_circles(&peer).is_empty() {
                    // A member that was admitted on a probationary connection.
                    self.net.connected.insert(peer);
                }
                self.on_sync_message(peer, Prechecked::new(&bytes), Answer::Respond(respond));
            }
            NetEvent::InboundRequest {
                peer,
                protocol: Protocol::Join,
                bytes,
                respond,
            } => self.on_join_request(peer, &bytes, respond),
            NetEvent::Oversized { peer, .. } => self.count_offence(peer, Offence::Oversized),
            _ => {}
        }
    }

    pub(crate) fn on_internal(&mut self, message: Internal) {
        match message {
            Internal::SyncAnswer { peer, message } => {
                // Our answer to their answer (e.g. a vector asking for more) goes out as a
                // new request.
                self.on_sync_message(peer, *message, Answer::Request);
            }
            Internal::SyncFailed { peer } => self.sync_soon(peer),
            Internal::Push { circle, message } => {
                let peers: Vec<PeerId> = self.net.connected.iter().copied().collect();
                for peer in peers {
                    if self.shared_circles(&peer).contains(&circle) {
                        send_sync(&self.net.net, &self.net.internal, peer, &message);
                    }
                }
            }
            Internal::JoinDone {
                code,
                contacts,
                result,
                reply,
            } => self.on_join_done(&code, &contacts, result, reply),
        }
    }

    /// Every [`SYNC_INTERVAL`]: compare with every connected member that is due, expire
    /// waits and bans.
    pub(crate) fn on_tick(&mut self) {
        // Notices held during quiet hours go out once they end.
        self.notifications.flush(crate::notify::local_minute_now());
        let now = Instant::now();
        let peers: Vec<PeerId> = self.net.connected.iter().copied().collect();
        for peer in peers {
            let (due, pause) = self
                .net
                .next_hello
                .entry(peer)
                .or_insert((now, SYNC_INTERVAL));
            if *due > now {
                continue;
            }
            *pause = (*pause * 2).min(SYNC_INTERVAL_MAX);
            *due = now + *pause;
            self.hello(peer);
        }
        self.refresh_allowed();
        self.refresh_join_window();
        self.settle_joins(false);
        if self.net.next_key_check <= now {
            // A minute between looks (or a quarter of a short test period).
            let period = Duration::from_millis(u64::try_from(rotation_period_ms()).unwrap_or(0));
            self.net.next_key_check = now + (period / 4).min(Duration::from_secs(60));
            for index in 0..self.circles.len() {
                self.key_upkeep(index, true);
            }
        }
    }

    /// Compares with `peer` again at the next tick, and often until nothing differs.
    fn sync_soon(&mut self, peer: PeerId) {
        if self.net.connected.contains(&peer) {
            let next = Instant::now() + SYNC_INTERVAL;
            self.net.next_hello.insert(peer, (next, SYNC_INTERVAL));
        }
    }

    /// One sync message from `peer` (a request, or the answer to ours). The answer goes out
    /// before the accepted envelopes are stored and applied, so that during a catch-up the
    /// peer prepares the next batch while this node applies the last one.
    fn on_sync_message(&mut self, peer: PeerId, message: Prechecked, answer: Answer) {
        let now = u64::try_from(now_ms()).unwrap_or(0);
        // A member may only sync circles it is in: check before anything is served.
        if let Some(circle) = message.circle()
            && !self.shared_circles(&peer).contains(&circle)
        {
            answer.nothing();
            self.count_offence(peer, Offence::UnknownCircle);
            return;
        }
        let Node {
            net,
            circles,
            store,
            ..
        } = self;
        let handled =
            net.sync
                .handle_prechecked(&peer, message, now, &Source(store), |circle, author| {
                    member_of(circles, circle, author)
                });
        for outcome in &handled.outcomes {
            match outcome {
                Outcome::Equivocation { seq, .. } => {
                    tracing::warn!(%peer, seq, "an author signed two envelopes at one seq; kept as evidence");
                }
                Outcome::Forked { seq, .. } => {
                    tracing::warn!(%peer, seq, "an envelope does not follow its author's chain; kept as evidence");
                }
                _ => {}
            }
        }
        self.offended(peer, handled.offence, handled.disconnect);
        if !handled.replies.is_empty() || !handled.accepted.is_empty() {
            self.sync_soon(peer);
        }
        let mut replies = handled.replies.into_iter();
        if let Answer::Respond(respond) = answer {
            let first = replies.next().and_then(|m| m.encode().ok());
            let _ = respond.send(first.unwrap_or_default());
        }
        for reply in replies {
            send_sync(&self.net.net, &self.net.internal, peer, &reply);
        }
        if let Some(circle) = handled.circle
            && !handled.accepted.is_empty()
        {
            self.accept(circle, handled.accepted);
        }
    }

    /// Counts an offence found outside the sync engine (which counts its own).
    fn count_offence(&mut self, peer: PeerId, offence: Offence) {
        let now = u64::try_from(now_ms()).unwrap_or(0);
        let disconnect = self.net.sync.record_offence(&peer, offence, now);
        self.offended(peer, Some(offence), disconnect);
    }

    /// Logs a bad message from `peer`, and keeps the peer out for a while once it has sent
    /// too many.
    fn offended(&mut self, peer: PeerId, offence: Option<Offence>, disconnect: bool) {
        if let Some(offence) = offence {
            tracing::warn!(%peer, ?offence, "bad sync message dropped");
        }
        if disconnect {
            tracing::warn!(%peer, "too many bad messages; keeping the peer out for a while");
            self.net.banned.insert(peer, Instant::now() + BAN);
            self.refresh_allowed();
        }
    }

    /// Stores, indexes, decrypts and applies envelopes `kith-sync` accepted, then tells
    /// watchers what changed. A roster change may release envelopes that waited for it;
    /// keys learned from the circle open envelopes that waited for them.
    pub(crate) fn accept(&mut self, circle_id: CircleId, mut accepted: Vec<Envelope>) {
        while !accepted.is_empty() {
            let Some(index) = self.circles.iter().position(|c| c.id == circle_id) else {
                return;
            };
            for envelope in &accepted {
                let stop = self.stop.clone();
                self.writer.append(
                    envelope.clone(),
                    Box::new(move |result| {
                        if let Err(e) = result {
                            tracing::error!(error = %e, "storing a received envelope failed; stopping");
                            let _ = stop.send(Some(crate::Stopped::Shutdown));
                        }
                    }),
                );
            }
            let roster_changed = self.open_and_apply(index, std::mem::take(&mut accepted));
            if roster_changed {
                self.refresh_allowed();
                self.refresh_join_window();
                let Node { net, circles, .. } = self;
                let released = net
                    .sync
                    .roster_changed(&circle_id, |author| member_of(circles, &circle_id, author));
                accepted = released.accepted;
            }
        }
        self.settle_joins(false);
    }

    /// Opens and applies `envelopes` (stored already) in circle `index`, then looks after
    /// the circle's keys: newly learned keys open envelopes that waited for them, and
    /// shares or a rotation are written. Returns whether the roster changed.
    fn open_and_apply(&mut self, index: usize, mut envelopes: Vec<Envelope>) -> bool {
        let mut roster_changed = false;
        while !envelopes.is_empty() {
            let Some(circle) = self.circles.get_mut(index) else {
                return roster_changed;
            };
            let mut changes = Vec::with_capacity(envelopes.len());
            let mut shared_keys = false;
            for envelope in envelopes.drain(..) {
                let plaintext = match circle.keys.open(&self.identity, &envelope) {
                    Opened::Payload(plaintext) => plaintext,
                    Opened::Locked => {
                        if circle.locked.len() < MAX_LOCKED {
                            circle.locked.push(envelope);
                        }
                        continue;
                    }
                    Opened::Unreadable => continue,
                };
                match Payload::decode(&plaintext) {
                    Ok(Payload::Change(change)) => {
                        changes.push((envelope.header.author.to_string(), change));
                    }
                    Ok(Payload::Keys(share)) => {
                        let author = envelope.header.author;
                        shared_keys |= !circle
                            .keys
                            .learn_shared(&self.identity, &author, &share)
                            .is_empty();
                    }
                    Err(_) => {}
                }
            }
            if !changes.is_empty() {
                roster_changed |= self.apply_received(index, &changes);
            }
            let learned = self.key_upkeep(index, false) | shared_keys;
            let Some(circle) = self.circles.get_mut(index) else {
                return roster_changed;
            };
            if learned && !circle.locked.is_empty() {
                let held = circle.keys.held();
                let (open, still): (Vec<Envelope>, Vec<Envelope>) = circle
                    .locked
                    .drain(..)
                    .partition(|e| held.contains(&e.header.epoch));
                circle.locked = still;
                envelopes = open;
            }
        }
        roster_changed
    }

    /// Applies received changes to circle `index` and tells watchers and the member what
    /// changed. Returns whether the roster changed.
    fn apply_received(&mut self, index: usize, changes: &[(String, Vec<u8>)]) -> bool {
        let Some(circle) = self.circles.get_mut(index) else {
            return false;
        };
        // Comparing the feed before and after costs two copies of it per batch: only
        // worth it when someone watches.
        let watched = self.events.receiver_count() > 0;
        let before: HashMap<String, ItemView> = if watched {
            circle
                .doc
                .items()
                .into_iter()
                .map(|i| (i.id.clone(), i))
                .collect()
        } else {
            HashMap::new()
        };
        let roster_before = circle.doc.members();
        let rejected_before = circle.doc.rejected_count();
        if let Err(e) = circle.doc.apply_signed(changes) {
            tracing::warn!(error = %e, "some received changes were refused");
        }
        for rejection in circle.doc.rejections_since(rejected_before) {
            tracing::warn!(
                writer = %rejection.writer,
                reason = %rejection.reason,
                "a member's change breaks the circle's rules; refused"
            );
        }
        let after = if watched {
            circle.doc.items()
        } else {
            Vec::new()
        };
        for item in after {
            if before.get(&item.id) != Some(&item)
                && let Some(info) = views::item(circle.id, &circle.doc, &item.id, now_ms())
            {
                let _ = self.events.send(ItemEvent {
                    circle: circle.id,
                    item: info,
                });
            }
        }
        let roster_changed = circle.doc.members() != roster_before;
        if roster_changed && circle.doc.is_removed(circle.doc.me()) {
            tracing::warn!("a steward removed this member from a circle");
        }
        self.attend(index);
        roster_changed
    }

    /// Looks after circle `index`'s keys ([`EpochKeys::upkeep`]): keys learned are stored
    /// before anything is sealed with them, and shares or a rotation go out as this
    /// member's envelopes. `scheduled`: also rotate when the newest key is old. Returns
    /// whether keys were learned.
    pub(crate) fn key_upkeep(&mut self, index: usize, scheduled: bool) -> bool {
        let period = rotation_period_ms();
        let Some(circle) = self.circles.get_mut(index) else {
            return false;
        };
        let done = circle.keys.upkeep(
            &self.identity,
            &mut circle.doc,
            now_ms(),
            period,
            scheduled,
            &mut rand::rng(),
        );
        let upkeep = match done {
            Ok(upkeep) => upkeep,
            Err(e) => {
                tracing::warn!(error = %e, "the circle's keys could not be looked after");
                return false;
            }
        };
        // Keys that came in shares since the last store are stored too.
        if !upkeep.learned.is_empty() || circle.keys.len() != circle.stored_keys {
            let record = CircleRecord {
                id: circle.id,
                epoch_keys: circle.keys.records(),
            };
            if let Err(e) = tokio::task::block_in_place(|| self.store.put_circle(&record)) {
                tracing::error!(error = %e, "storing the circle's keys failed; stopping");
                let _ = self.stop.send(Some(crate::Stopped::Shutdown));
                return false;
            }
            circle.stored_keys = circle.keys.len();
            tracing::info!("new circle key epochs");
        }
        for change in upkeep.changes {
            match change.what {
                KeyChangeKind::Rotation(why) => {
                    tracing::info!(why = ?why, "rotated the circle key");
                }
                KeyChangeKind::Share => tracing::info!("wrapped a circle key for members"),
            }
            let answer = Reply::Done { id: String::new() };
            match self.seal_payload(index, &change.seal, &change.payload, answer, None) {
                Ok(outcome) => self.submit(outcome, None),
                Err(Refusal(_, message)) => tracing::warn!(%message, "a key change was not sealed"),
            }
        }
        // Private items of this member whose audience lost someone get a new key.
        // (Only with a clean key to seal it with: a change written must be sealed.)
        let renewal = match self.circles.get_mut(index) {
            Some(circle) => {
                let now = now_ms();
                if circle
                    .keys
                    .write_epoch(&self.identity, &circle.doc, now)
                    .is_some()
                {
                    circle.doc.renew_private_keys()
                } else {
                    Ok(None)
                }
            }
            None => Ok(None),
        };
        match renewal {
            Ok(Some(change)) => {
                tracing::info!("renewed the keys of private items after a removal");
                let answer = Reply::Done { id: String::new() };
                match self.seal_outcome(index, &change, answer, None) {
                    Ok(outcome) => self.submit(outcome, None),
                    Err(Refusal(_, message)) => {
                        tracing::warn!(%message, "a key renewal was not sealed");
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "private items' keys could not be renewed"),
        }
        !upkeep.learned.is_empty()
    }

    /// Asks for [`Node::publish_addresses`] once the current request is submitted.
    pub(crate) fn publish_addresses_later(&mut self) {
        self.net.addresses_dirty = true;
    }

    /// Writes this node's listen addresses into each circle's roster entry, so members can
    /// dial it (encrypted like everything else). Unspecified addresses are not published.
    /// Called between requests only: its envelopes must queue after any pending one.
    pub(crate) fn publish_addresses(&mut self) {
        self.net.addresses_dirty = false;
        let addresses: Vec<String> = self
            .net
            .listening
            .iter()
            .map(ToString::to_string)
            .filter(|a| !a.contains("/0.0.0.0/") && !a.contains("/::/"))
            .take(8)
            .collect();
        for index in 0..self.circles.len() {
            let now = now_ms();
            let Some(circle) = self.circles.get_mut(index) else {
                continue;
            };
            if !circle.doc.members().iter().any(|m| m.id == circle.doc.me()) {
                continue;
            }
            match circle.doc.set_my_addresses(&addresses, now) {
                Ok(Some(change)) => {
                    if let Ok(outcome) =
                        self.seal_outcome(index, &change, Reply::Done { id: String::new() }, None)
                    {
                        self.submit(outcome, None);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "addresses not published"),
            }
        }
    }

    /// `kith invite`: records the invite in the circle (so any member can admit its holder)
    /// and answers with the code once that record is durable.
    pub(crate) fn invite(
        &mut self,
        selector: Option<&str>,
        ttl_secs: u64,
        uses: u32,
    ) -> Result<crate::node::Outcome, Refusal> {
        if uses == 0 || uses > 50 {
            return Err(Refusal(
                ErrorKind::Usage,
                "--uses must be between 1 and 50".into(),
            ));
        }
        if !(1..=30 * 86_400).contains(&ttl_secs) {
            return Err(Refusal(
                ErrorKind::Usage,
                "--ttl must be between 1 second and 30 days".into(),
            ));
        }
        let index = self.circle_index(selector)?;
        let circle_id = self.circle_at(index)?.id;
        let addresses: Vec<String> = self
            .net
            .listening
            .iter()
            .map(ToString::to_string)
            .filter(|a| invitable(a))
            .take(kith_crypto::MAX_INVITE_ADDRESSES)
            .collect();
        if addresses.is_empty() {
            return Err(Refusal(
                ErrorKind::Refused,
                "this node listens on no address others can reach; start it with --listen".into(),
            ));
        }
        let contacts = self.invite_contacts(index, addresses);
        let now = now_ms();
        let expires_secs = u64::try_from(now / 1000).unwrap_or(0) + ttl_secs;
        let code =
            InviteCode::generate_with_contacts(circle_id, contacts, expires_secs, &mut rand::rng())
                .map_err(|e| Refusal(ErrorKind::Internal, e.to_string()))?;
        let verifier = invite_authority(code.secret()).member_id().0;
        let expires_ms = i64::try_from(expires_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let circle = self
            .circles
            .get_mut(index)
            .ok_or_else(crate::node::no_circle)?;
        let change =
            circle
                .doc
                .create_invite(&encode_id(&code.id()), verifier, expires_ms, uses, now)?;
        let answer = Reply::Invite {
            id: encode_id(&code.id()),
            code: code.encode(),
            circle: circle_id.to_string(),
            expires_at: views::rfc3339(expires_ms),
            uses,
        };
        let outcome = self.seal_outcome(index, &change, answer, None)?;
        self.refresh_join_window();
        Ok(outcome)
    }

    /// The contacts of a new invite of circle `index`: this node with `own` addresses first,
    /// then up to three other members who published addresses, those connected now first
    /// (they are the likeliest to be online when the code is used), then in roster order.
    /// Stays within the invite's bounds on addresses.
    fn invite_contacts(&self, index: usize, own: Vec<String>) -> Vec<kith_crypto::InviteContact> {
        let mut budget = kith_crypto::MAX_INVITE_TOTAL_ADDRESSES.saturating_sub(own.len());
        let mut contacts = vec![kith_crypto::InviteContact {
            member: self.member_id,
            addresses: own,
        }];
        let Some(circle) = self.circles.get(index) else {
            return contacts;
        };
        let me = self.member_id.to_string();
        let mut others: Vec<(bool, MemberId, Vec<String>)> = circle
            .doc
            .members()
            .into_iter()
            .filter(|m| m.id != me)
            .filter_map(|m| {
                let member: MemberId = m.id.parse().ok()?;
                let peer = member.to_peer_id().ok()?;
                if self.net.banned.contains_key(&peer) {
                    return None;
                }
                let addresses: Vec<String> = m
                    .addresses
                    .into_iter()
                    .filter(|a| invitable(a))
                    .take(INVITE_OTHER_ADDRESSES)
                    .collect();
                let offline = !self.net.connected.contains(&peer);
                (!addresses.is_empty()).then_some((offline, member, addresses))
            })
            .collect();
        // Stable: members equally connected stay in roster order.
        others.sort_by_key(|(offline, ..)| *offline);
        for (_, member, mut addresses) in others.into_iter().take(INVITE_OTHER_CONTACTS) {
            addresses.truncate(budget);
            if addresses.is_empty() {
                break;
            }
            budget -= addresses.len();
            contacts.push(kith_crypto::InviteContact { member, addresses });
        }
        contacts
    }

    /// `kith join CODE`: checks the code, then asks the members it names, in a task.
    pub(crate) fn join(&mut self, text: &str, reply: oneshot::Sender<Response>) {
        let fail = |reply: oneshot::Sender<Response>, kind, message: String| {
            let _ = reply.send(Response::Error(kith_ipc::ErrorReply { kind, message }));
        };
        let code = match InviteCode::parse(text) {
            Ok(code) => code,
            Err(e) => {
                return fail(
                    reply,
                    ErrorKind::Refused,
                    format!("invalid invite code: {e}"),
                );
            }
        };
        let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
        if code.is_expired(now_secs) {
            return fail(reply, ErrorKind::Refused, "this invite has expired".into());
        }
        if self.circles.iter().any(|c| c.id == code.circle()) {
            return fail(
                reply,
                ErrorKind::Refused,
                "you are already in this circle".into(),
            );
        }
        if code.inviter() == self.member_id {
            return fail(reply, ErrorKind::Refused, "this is your own invite".into());
        }
        let me = self.net.net.local_peer_id();
        let mut contacts = Vec::new();
        for contact in code.contacts() {
            let Ok(peer) = contact.member.to_peer_id() else {
                continue;
            };
            let addresses: Vec<Multiaddr> = contact
                .addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            if contact.member == self.member_id || addresses.is_empty() {
                continue;
            }
            // The signature names the admitter: one per contact.
            let signature = JoinSignature::create(code.secret(), &code.circle(), &me, &peer);
            let request = JoinRequest {
                v: 1,
                circle: code.circle().to_string(),
                invite: encode_id(&code.id()),
                signature: encode_id(&signature.0),
                name: self.name.clone(),
            };
            let Ok(request) = serde_json::to_vec(&request) else {
                return fail(
                    reply,
                    ErrorKind::Internal,
                    "cannot encode the join request".into(),
                );
            };
            contacts.push(JoinContact {
                member: contact.member,
                peer,
                addresses,
                request,
            });
        }
        if contacts.is_empty() {
            return fail(
                reply,
                ErrorKind::Refused,
                "the invite holds no address to reach".into(),
            );
        }
        let peers: Vec<PeerId> = contacts.iter().map(|c| c.peer).collect();
        self.net.join_targets.extend(peers.iter().copied());
        // Every allowed set sent from now on includes the contacts.
        self.refresh_allowed();
        let net = self.net.net.clone();
        let internal = self.net.internal.clone();
        let code = Box::new(code);
        tokio::spawn(async move {
            let result = reach_contacts(&net, contacts).await;
            let _ = internal
                .send(Internal::JoinDone {
                    code,
                    contacts: peers,
                    result,
                    reply,
                })
                .await;
        });
    }

    /// The end of a join attempt through `contacts`. Admitted: only the admitter stays a
    /// join target (it serves the circle's history; the others become allowed as members
    /// once the roster arrives). Otherwise none does.
    fn on_join_done(
        &mut self,
        code: &InviteCode,
        contacts: &[PeerId],
        result: Result<JoinReply, String>,
        reply: oneshot::Sender<Response>,
    ) {
        let fail = |reply: oneshot::Sender<Response>, message: String| {
            let _ = reply.send(Response::Error(kith_ipc::ErrorReply {
                kind: ErrorKind::Refused,
                message,
            }));
        };
        let admitter = match &result {
            Ok(JoinReply {
                peer,
                answer: JoinAnswer::Admitted { .. },
                ..
            }) => Some(*peer),
            _ => None,
        };
        for peer in contacts {
            if Some(*peer) != admitter {
                self.net.join_targets.remove(peer);
            }
        }
        self.refresh_allowed();
        let (admitter, keys) = match result {
            Ok(JoinReply {
                member,
                peer,
                answer: JoinAnswer::Admitted { circle, keys },
            }) if circle == code.circle().to_string() => ((member, peer), keys),
            Ok(JoinReply {
                peer,
                answer: JoinAnswer::Admitted { .. },
                ..
            }) => {
                self.net.join_targets.remove(&peer);
                return fail(
                    reply,
                    "the admitting member answered for another circle".into(),
                );
            }
            Ok(JoinReply {
                answer: JoinAnswer::Refused { reason },
                ..
            }) => {
                return fail(reply, format!("the circle refused the invite: {reason}"));
            }
            Err(e) => return fail(reply, e),
        };
        if self.circles.iter().any(|c| c.id == code.circle()) {
            return fail(reply, "you are already in this circle".into());
        }
        let circle_id = code.circle();
        let mut epoch_keys: Vec<(u32, EpochKey)> = Vec::new();
        for wrapped in keys.iter().take(1024) {
            let Ok(bytes) = decode_id::<{ kith_crypto::WRAPPED_KEY_LEN }>(&wrapped.key) else {
                continue;
            };
            let Ok(key) = WrappedKey::decode(&bytes) else {
                continue;
            };
            // Wrapped, and authenticated, by whoever admitted us.
            if let Ok(key) =
                unwrap_epoch_key(&self.identity, &admitter.0, &circle_id, wrapped.epoch, &key)
            {
                epoch_keys.push((wrapped.epoch, key));
            }
        }
        if epoch_keys.is_empty() {
            return fail(
                reply,
                "the admitting member sent no key this device can open".into(),
            );
        }
        let record = CircleRecord {
            id: circle_id,
            epoch_keys,
        };
        if let Err(e) = tokio::task::block_in_place(|| self.store.put_circle(&record)) {
            return fail(reply, format!("cannot store the circle: {e}"));
        }
        let mut doc = match Circle::load(&self.member_id.to_string(), &[]) {
            Ok(doc) => doc,
            Err(e) => return fail(reply, e.to_string()),
        };
        doc.set_keyring(CircleKeyring::shared(&self.identity, circle_id));
        // Only the genesis the circle's id names is taken (docs/document.md).
        doc.bind(circle_id.0);
        self.circles.push(CircleState {
            id: circle_id,
            doc,
            stored_keys: record.epoch_keys.len(),
            keys: EpochKeys::new(circle_id, record.epoch_keys),
            locked: Vec::new(),
            own_head: None,
        });
        self.net.sync.join(circle_id);
        tracing::info!(circles = self.circles.len(), "joined a circle");
        self.net.waiting_joins.push(WaitingJoin {
            circle: circle_id,
            reply,
            deadline: Instant::now() + JOIN_SETTLE,
        });
        if let Some(state) = self.net.sync.circle(&circle_id) {
            send_sync(
                &self.net.net,
                &self.net.internal,
                admitter.1,
                &state.vector(),
            );
        }
    }

    /// Answers `kith join` once the newcomer's own roster entry has arrived (the circle's
    /// history is then here), or at the deadline (admitted, still catching up).
    ///
    /// Runs after every received batch too, so it also opens the join window as soon as
    /// another member's new invite arrives here: this node can then admit its holder at once,
    /// also while the inviter is offline.
    pub(crate) fn settle_joins(&mut self, all: bool) {
        let now = Instant::now();
        let me = self.member_id.to_string();
        let mut still = Vec::new();
        for waiting in std::mem::take(&mut self.net.waiting_joins) {
            let arrived = self
                .circles
                .iter()
                .find(|c| c.id == waiting.circle)
                .is_some_and(|c| c.doc.members().iter().any(|m| m.id == me));
            if arrived || all || now >= waiting.deadline {
                if arrived {
                    // The admitter is a member now: no need to keep it as a join target.
                    self.net.join_targets.clear();
                    self.net.addresses_dirty = true;
                }
                let _ = waiting.reply.send(Response::Ok(Reply::Created {
                    id: waiting.circle.to_string(),
                }));
            } else {
                still.push(waiting);
            }
        }
        self.net.waiting_joins = still;
        self.refresh_allowed();
        self.refresh_join_window();
    }

    /// An admitter's side of `/kith/join/1`.
    fn on_join_request(&mut self, peer: PeerId, bytes: &[u8], respond: oneshot::Sender<Vec<u8>>) {
        match self.admit(peer, bytes) {
            Ok(Admission::Written(outcome, keys, circle)) => {
                let answer = serde_json::to_vec(&JoinAnswer::Admitted {
                    circle: circle.to_string(),
                    keys,
                })
                .unwrap_or_default();
                let net = self.net.net.clone();
                tokio::spawn(async move {
                    let _ = net.admit(peer).await;
                });
                self.submit(
                    *outcome,
                    Some(Box::new(move || {
                        let _ = respond.send(answer);
                    })),
                );
                self.refresh_allowed();
                self.refresh_join_window();
            }
            Ok(Admission::Already(keys, circle)) => {
                let net = self.net.net.clone();
                tokio::spawn(async move {
                    let _ = net.admit(peer).await;
                });
                let _ = respond.send(
                    serde_json::to_vec(&JoinAnswer::Admitted {
                        circle: circle.to_string(),
                        keys,
                    })
                    .unwrap_or_default(),
                );
            }
            Err(reason) => {
                tracing::info!(%peer, "join refused");
                let _ = respond.send(refused(reason));
            }
        }
    }

    fn admit(&mut self, peer: PeerId, bytes: &[u8]) -> Result<Admission, String> {
        let request = parse_join_request(bytes)?;
        let circle_id = request.circle;
        let index = self
            .circles
            .iter()
            .position(|c| c.id == circle_id)
            .ok_or("unknown circle")?;
        let joiner = MemberId::from_peer_id(&peer).map_err(|_| "unusable peer id".to_string())?;
        let signature = request.signature;
        let my_peer = self.net.net.local_peer_id();
        let circle = self.circles.get(index).ok_or("unknown circle")?;
        let invite = circle.doc.invite(&request.invite).ok_or(UNKNOWN_INVITE)?;
        if !JoinSignature(signature).verify(&invite.verifier, &circle_id, &peer, &my_peer) {
            return Err("the invite proof does not verify".into());
        }
        let joiner_id = joiner.to_string();
        if circle.doc.is_removed(&joiner_id) {
            return Err(CoreError::Removed(joiner_id).to_string());
        }
        let keys = self.wrap_keys_for(index, &joiner)?;
        if circle.doc.members().iter().any(|m| m.id == joiner_id) {
            return Ok(Admission::Already(keys, circle_id));
        }
        let handed: Vec<u32> = keys.iter().map(|k| k.epoch).collect();
        let now = now_ms();
        let circle = self.circles.get_mut(index).ok_or("unknown circle")?;
        let change = circle
            .doc
            .admit(&joiner_id, &request.name, &request.invite, &handed, now)
            .map_err(|e: CoreError| e.to_string())?;
        let outcome = self
            .seal_outcome(index, &change, Reply::Done { id: String::new() }, None)
            .map_err(|Refusal(_, message)| message)?;
        tracing::info!("admitted a new member");
        Ok(Admission::Written(Box::new(outcome), keys, circle_id))
    }

    fn wrap_keys_for(&self, index: usize, joiner: &MemberId) -> Result<Vec<WrappedEpoch>, String> {
        let circle = self.circles.get(index).ok_or("unknown circle")?;
        let mut keys = Vec::new();
        for (epoch, key) in circle.keys.records() {
            let wrapped = wrap_epoch_key(
                &self.identity,
                joiner,
                &circle.id,
                epoch,
                &key,
                &mut rand::rng(),
            )
            .map_err(|e| e.to_string())?;
            keys.push(WrappedEpoch {
                epoch,
                key: encode_id(&wrapped.encode()),
            });
        }
        Ok(keys)
    }

    /// For `kith status`.
    pub(crate) fn equivocations(&self) -> usize {
        self.net.sync.circles().map(|c| c.evidence().len()).sum()
    }
}

/// What an admission produced.
enum Admission {
    /// A new roster entry, to be made durable before answering.
    Written(Box<crate::node::Outcome>, Vec<WrappedEpoch>, CircleId),
    /// The joiner is already a member (its first answer was lost): answer again.
    Already(Vec<WrappedEpoch>, CircleId),
}

/// Whether `address` is worth handing out in an invite: it reads as a multiaddr, fits the
/// invite's bounds, and is not an unspecified address (0.0.0.0 or ::), which nobody can dial.
fn invitable(address: &str) -> bool {
    !address.contains("/0.0.0.0/")
        && !address.contains("/::/")
        && !address.is_empty()
        && address.len() <= kith_crypto::MAX_INVITE_ADDRESS_LEN
        && address.bytes().all(|b| b.is_ascii_graphic())
        && address.parse::<Multiaddr>().is_ok()
}

/// Where one contact stands in [`reach_contacts`].
#[derive(Debug)]
enum Reach {
    /// Not reached yet; the last error, if any attempt failed.
    Trying(Option<String>),
    /// Its node took the connection and closed it, again and again: it admits nobody with
    /// this code (or has not learnt of the invite yet).
    Closed,
    /// It does not know the invite (another member may).
    Unknown(String),
    /// It answered something that does not read.
    Unreadable,
}

/// Allows and dials every contact, then asks them in turn, the inviter first, to admit us,
/// round after round until one answers for good or [`JOIN_REACH`] has passed. One attempt
/// takes at most [`JOIN_ATTEMPT`], so a contact that cannot be reached does not hold up
/// the others for long (the network actor dials all of them at once in the background).
///
/// An admission, or a refusal other than "unknown invite", ends the search: the members
/// share the invite's record, so another one would refuse too (or, not having seen the last
/// admission yet, let one more person in). Once one contact has said no in another way, the
/// others get one more [`JOIN_ATTEMPT`], not the rest of [`JOIN_REACH`]. If no contact
/// admits, the most telling failure is reported: a connection closed for want of a usable
/// invite, then "unknown invite", then an unreadable answer, then why the inviter could not
/// be reached.
async fn reach_contacts(net: &NetHandle, contacts: Vec<JoinContact>) -> Result<JoinReply, String> {
    for contact in &contacts {
        net.admit(contact.peer).await.map_err(|e| e.to_string())?;
        for addr in &contact.addresses {
            let _ = net.add_address(contact.peer, addr.clone()).await;
        }
    }
    let mut deadline = Instant::now() + JOIN_REACH;
    let mut states: Vec<(JoinContact, Reach, u32)> = contacts
        .into_iter()
        .map(|c| (c, Reach::Trying(None), 0))
        .collect();
    loop {
        for (contact, state, closed) in &mut states {
            if !matches!(state, Reach::Trying(_)) {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let request = net.request(contact.peer, Protocol::Join, contact.request.clone());
            match tokio::time::timeout(left.min(JOIN_ATTEMPT), request).await {
                Ok(Ok(bytes)) => match serde_json::from_slice::<JoinAnswer>(&bytes) {
                    Ok(JoinAnswer::Refused { reason }) if reason.starts_with("unknown invite") => {
                        *state = Reach::Unknown(reason);
                    }
                    Ok(answer) => {
                        return Ok(JoinReply {
                            member: contact.member,
                            peer: contact.peer,
                            answer,
                        });
                    }
                    Err(_) => *state = Reach::Unreadable,
                },
                Ok(Err(kith_net::NetError::ConnectionClosed | kith_net::NetError::Unsupported)) => {
                    *closed += 1;
                    if *closed >= 3 {
                        *state = Reach::Closed;
                    }
                }
                Ok(Err(e)) => *state = Reach::Trying(Some(e.to_string())),
                Err(_) => *state = Reach::Trying(Some("no answer in time".into())),
            }
        }
        let trying = states.iter().any(|(_, s, _)| matches!(s, Reach::Trying(_)));
        if trying
            && states
                .iter()
                .any(|(_, s, _)| !matches!(s, Reach::Trying(_)))
        {
            deadline = deadline.min(Instant::now() + JOIN_ATTEMPT);
        }
        if !trying || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    join_failure(&states)
}

/// The most telling reason a join found nobody to admit it (see [`reach_contacts`]).
fn join_failure(states: &[(JoinContact, Reach, u32)]) -> Result<JoinReply, String> {
    if states.iter().any(|(_, s, _)| matches!(s, Reach::Closed)) {
        return Err("the circle refused this invite: it is used up, expired or revoked".into());
    }
    if let Some((contact, Reach::Unknown(reason), _)) = states
        .iter()
        .find(|(_, s, _)| matches!(s, Reach::Unknown(_)))
    {
        return Ok(JoinReply {
            member: contact.member,
            peer: contact.peer,
            answer: JoinAnswer::Refused {
                reason: reason.clone(),
            },
        });
    }
    if states
        .iter()
        .any(|(_, s, _)| matches!(s, Reach::Unreadable))
    {
        return Err("a member named in the invite gave an unreadable answer".into());
    }
    let why = states
        .first()
        .and_then(|(_, s, _)| match s {
            Reach::Trying(Some(e)) => Some(format!(": {e}")),
            _ => None,
        })
        .unwrap_or_default();
    Err(if states.len() > 1 {
        format!(
            "none of the {} members named in the invite could be reached (is the inviter's \
             or another member's Kith running?){why}",
            states.len()
        )
    } else {
        format!("the inviter could not be reached (is their Kith running?){why}")
    })
}
