//! The node actor: owns the identity, the circles' documents and the store.
//!
//! It receives requests from socket connections one at a time, so edits to a circle never
//! race. An edit is applied to the document, sealed into the next envelope of this member's
//! chain, and queued on the store's writer; the answer (and the watch event) goes out from
//! the writer's acknowledgement, once the envelope is durable. Queued writes from several
//! clients share one fsync.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use kith_core::{
    Circle, CoreError, Horizon, ItemEdit, ItemId, NewCheckin, NewOffer, NewRequest, Payload,
};
use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, Hash, MemberId};
use kith_ipc::{
    CircleInfo, ErrorKind, ErrorReply, ExportInfo, FeedFilter, ItemInfo, Reply, Request, Response,
    StatusInfo,
};
use kith_store::{CircleRecord, Store, StoreWriter};
use kith_sync::Message;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::attention::{self, Digest};
use crate::epochs::{EpochKeys, Opened, Seal};
use crate::keyring::CircleKeyring;
use crate::notify::{self, NoticeKind, Notifications, NotifySettings};
use crate::{
    DaemonError, Stopped,
    network::{Internal, NetState, SYNC_INTERVAL},
    views,
};

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A request and where its answer goes.
pub(crate) type Job = (Request, oneshot::Sender<Response>);

/// What goes to watchers: the circle and the item as it now reads.
#[derive(Clone, Debug)]
pub(crate) struct ItemEvent {
    pub circle: CircleId,
    pub item: ItemInfo,
}

/// One circle this node is in.
pub(crate) struct CircleState {
    pub id: CircleId,
    pub doc: Circle,
    /// The circle key's epochs this member holds.
    pub keys: EpochKeys,
    /// Received envelopes sealed with an epoch key this member does not hold yet; opened
    /// when the key arrives (a rotation's wraps may come after what was sealed with it).
    pub locked: Vec<Envelope>,
    /// How many keys the store holds for this circle (more are stored when learned).
    pub stored_keys: usize,
    /// This member's last envelope in the circle: `(seq, hash)`.
    pub own_head: Option<(u64, Hash)>,
}

pub(crate) struct Node {
    pub home: PathBuf,
    pub identity: DeviceIdentity,
    pub member_id: MemberId,
    pub name: String,
    pub listen: Vec<String>,
    pub store: Store,
    pub writer: StoreWriter,
    pub circles: Vec<CircleState>,
    pub events: broadcast::Sender<ItemEvent>,
    pub stop: watch::Sender<Option<Stopped>>,
    pub net: NetState,
    /// Desktop notifications, and their settings as saved in the home.
    pub notifications: Notifications,
    pub notify_settings: NotifySettings,
    /// Every item as the member last knew it, per circle, to tell what changed for them.
    pub attention: HashMap<CircleId, HashMap<String, Digest>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("member_id", &self.member_id)
            .field("circles", &self.circles.len())
            .finish_non_exhaustive()
    }
}

/// A refusal to send back to the client.
pub(crate) struct Refusal(pub ErrorKind, pub String);

impl From<CoreError> for Refusal {
    fn from(e: CoreError) -> Self {
        let kind = match e {
            CoreError::UnknownItem(_) | CoreError::AmbiguousItem(_) => ErrorKind::NotFound,
            CoreError::UnknownValue { .. } | CoreError::InvalidId(_) => ErrorKind::Usage,
            CoreError::Document(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        };
        Refusal(kind, e.to_string())
    }
}

impl Node {
    /// Rebuilds every circle from the store.
    pub(crate) fn load(
        store: Store,
        home: PathBuf,
        listen: Vec<String>,
        events: broadcast::Sender<ItemEvent>,
        stop: watch::Sender<Option<Stopped>>,
        mut net: NetState,
    ) -> Result<Node, DaemonError> {
        let identity = DeviceIdentity::from_secret(&store.identity_secret()?);
        let member_id = identity.member_id();
        let name = store.member_name()?;
        let mut circles = Vec::new();
        for record in store.circles()? {
            let envelopes = store.load_envelopes(&record.id)?;
            if envelopes.is_empty() {
                // Created but its genesis never became durable: nothing was acknowledged.
                continue;
            }
            let mut keys = EpochKeys::new(record.id, record.epoch_keys);
            let mut own_head = None;
            let sync = net.sync.join(record.id);
            for envelope in &envelopes {
                sync.restore(envelope)
                    .map_err(|e| DaemonError::Load(e.to_string()))?;
                if envelope.header.author == member_id {
                    own_head = Some((envelope.header.seq, envelope.hash()));
                }
            }
            // Envelopes are stored before their changes are checked, so the store can hold
            // changes the rules refuse: they are refused again here, and the rest loads.
            let mut doc = Circle::load(&member_id.to_string(), &[])
                .map_err(|e| DaemonError::Load(e.to_string()))?;
            doc.set_keyring(CircleKeyring::shared(&identity, record.id));
            // Keys arrive inside the circle (a rotation's wraps): open what the keys held
            // allow, learn the keys that reveals, and go on until nothing more opens.
            // Direct envelopes (key shares) open with this member's identity, or never. The
            // keys they carried were stored when they came, so they are opened (a trial
            // decryption per key slot) only if something still waits for a key.
            let (mut shares, mut locked): (Vec<Envelope>, Vec<Envelope>) =
                envelopes.into_iter().partition(Envelope::is_direct);
            let before = keys.len();
            loop {
                let (mut open, still): (Vec<Envelope>, Vec<Envelope>) = locked
                    .into_iter()
                    .partition(|e| keys.get(e.header.epoch).is_some());
                locked = still;
                if open.is_empty() {
                    if locked.is_empty() || shares.is_empty() {
                        break;
                    }
                    open = std::mem::take(&mut shares);
                }
                let mut changes = Vec::with_capacity(open.len());
                for envelope in &open {
                    // Every stored envelope was verified before it was stored, and the
                    // store's rows are authenticated under this device's key.
                    // (A key shared by a hostile member may not open it: skipped, never fatal.)
                    let Opened::Payload(plaintext) = keys.open(&identity, envelope) else {
                        continue;
                    };
                    match Payload::decode(&plaintext) {
                        Ok(Payload::Change(change)) => {
                            changes.push((envelope.header.author.to_string(), change));
                        }
                        Ok(Payload::Keys(share)) => {
                            keys.learn_shared(&identity, &envelope.header.author, &share);
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable payload skipped"),
                    }
                }
                if doc.apply_signed(&changes).is_err() {
                    tracing::warn!(
                        refused = doc.rejected_count(),
                        "stored changes that break the circle's rules were refused again"
                    );
                }
                let plan = doc.key_plan(
                    &keys.usable(&doc),
                    now_ms(),
                    crate::epochs::ROTATION_PERIOD_MS,
                );
                keys.learn(&identity, &plan);
            }
            // Circles founded before ids committed to their genesis are not checked.
            if Circle::id_of_genesis_matches(&doc, record.id.0) {
                doc.bind(record.id.0);
            }
            if keys.len() != before {
                store.put_circle(&CircleRecord {
                    id: record.id,
                    epoch_keys: keys.records(),
                })?;
            }
            if !locked.is_empty() {
                tracing::info!(
                    waiting = locked.len(),
                    "envelopes sealed with a key this member does not hold"
                );
            }
            circles.push(CircleState {
                id: record.id,
                doc,
                stored_keys: keys.len(),
                keys,
                locked,
                own_head,
            });
        }
        let writer = store.writer();
        let notify_settings = NotifySettings::load(&home);
        let notifications =
            Notifications::from_env(notify_settings.detail, notify_settings.quiet_hours());
        let attention = circles
            .iter()
            .map(|c| {
                let me = c.doc.me().to_string();
                let mut digests = HashMap::new();
                c.doc.visit_items(|i| {
                    if attention::concerns(i, &me) {
                        digests.insert(i.id.clone(), attention::digest(i, &me));
                    }
                });
                (c.id, digests)
            })
            .collect();
        Ok(Node {
            home,
            identity,
            member_id,
            name,
            listen,
            store,
            writer,
            circles,
            events,
            stop,
            net,
            notifications,
            notify_settings,
            attention,
        })
    }

    /// Compares the items the last apply in circle `index` touched with what the member
    /// knew of them, and tells the member what concerns them.
    pub(crate) fn attend(&mut self, index: usize) {
        let Node {
            circles,
            attention: remembered,
            notifications,
            ..
        } = self;
        let Some(circle) = circles.get(index) else {
            return;
        };
        let doc = &circle.doc;
        let me = doc.me().to_string();
        let known = remembered.entry(circle.id).or_default();
        // Only items that concern the member, or that they knew, are compared.
        let mut items: Vec<&kith_core::ItemView> = Vec::new();
        let consider = |item: &'_ kith_core::ItemView| {
            attention::concerns(item, &me) || known.contains_key(&item.id)
        };
        match doc.last_touched() {
            Some(ids) => {
                for id in ids {
                    if let Some(item) = doc.item_without_replies(id)
                        && consider(item)
                    {
                        items.push(item);
                    }
                }
            }
            // Everything was read again (a roster change).
            None => {
                let mut all = Vec::new();
                doc.visit_items(|item| all.push(item.id.clone()));
                for id in all {
                    if let Some(item) = doc.item_without_replies(&id)
                        && consider(item)
                    {
                        items.push(item);
                    }
                }
            }
        }
        let minute = notify::local_minute_now();
        for item in items {
            let before = known.get(&item.id);
            let name = |m: &str| doc.member_name(m).unwrap_or_default();
            for notice in attention::notices(&me, before, item, name) {
                if notice.kind == NoticeKind::LostRace {
                    tracing::info!(
                        item = %item.id,
                        "another member took the last spot first; your claim is on standby"
                    );
                }
                notifications.notify(notice, minute);
            }
            known.insert(item.id.clone(), attention::digest(item, &me));
        }
    }

    /// Records what the member now knows of item `id` after their own edit.
    fn know(&mut self, index: usize, id: &str) {
        let Some(circle) = self.circles.get(index) else {
            return;
        };
        let me = circle.doc.me();
        if let Some(item) = circle.doc.item_without_replies(id)
            && attention::concerns(item, me)
        {
            let digest = attention::digest(item, me);
            self.attention
                .entry(circle.id)
                .or_default()
                .insert(id.to_string(), digest);
        }
    }

    pub(crate) fn circle_count(&self) -> usize {
        self.circles.len()
    }

    /// Answers `request`: at once, or once its envelope is durable.
    fn handle(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        if let Request::Join { code } = request {
            // Answered when the admission and the circle's history arrive.
            self.join(&code, reply);
            return;
        }
        match self.dispatch(request) {
            Ok(Outcome::Reply(answer)) => {
                let _ = reply.send(Response::Ok(answer));
            }
            Ok(outcome @ Outcome::Write { .. }) => {
                self.submit_answering(outcome, Some(reply), None)
            }
            Err(Refusal(kind, message)) => {
                let _ = reply.send(Response::Error(ErrorReply { kind, message }));
            }
        }
    }

    /// Queues a sealed write that nobody waits for but `after`.
    pub(crate) fn submit(&mut self, outcome: Outcome, after: Option<Box<dyn FnOnce() + Send>>) {
        self.submit_answering(outcome, None, after);
    }

    /// Queues a sealed write; once it is durable, answers `reply`, runs `after`, tells
    /// watchers and pushes the envelope to connected members.
    fn submit_answering(
        &mut self,
        outcome: Outcome,
        reply: Option<oneshot::Sender<Response>>,
        after: Option<Box<dyn FnOnce() + Send>>,
    ) {
        let Outcome::Write {
            envelope,
            answer,
            event,
            push,
        } = outcome
        else {
            return;
        };
        let events = self.events.clone();
        let stop = self.stop.clone();
        let internal = self.net.internal.clone();
        self.writer.append(
            envelope,
            Box::new(move |result| match result {
                Ok(()) => {
                    if let Some(event) = event {
                        // No watcher is fine.
                        let _ = events.send(event);
                    }
                    if let Some((circle, message)) = push {
                        // A full queue only delays: the next sync round carries it.
                        let _ = internal.try_send(Internal::Push { circle, message });
                    }
                    if let Some(after) = after {
                        after();
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(Response::Ok(answer));
                    }
                }
                Err(e) => {
                    // The document already holds the edit but the disk does not: the
                    // chain would fork. Stop rather than go on inconsistent.
                    tracing::error!(error = %e, "a write failed; stopping the daemon");
                    if let Some(reply) = reply {
                        let _ = reply.send(Response::Error(ErrorReply {
                            kind: ErrorKind::Internal,
                            message: format!("could not store the change: {e}"),
                        }));
                    }
                    let _ = stop.send(Some(Stopped::Shutdown));
                }
            }),
        );
    }

    fn dispatch(&mut self, request: Request) -> Result<Outcome, Refusal> {
        match request {
            Request::Status => Ok(Outcome::Reply(self.status())),
            Request::CircleCreate { name } => self.create_circle(&name),
            Request::CircleList => Ok(Outcome::Reply(Reply::Circles {
                circles: self.circles.iter().map(circle_info).collect(),
            })),
            Request::Members { circle } => {
                let c = self.circle(circle.as_deref())?;
                Ok(Outcome::Reply(Reply::Members {
                    members: views::members(&c.doc, &self.member_id),
                }))
            }
            Request::CheckIn {
                circle,
                mood,
                note,
                help,
                to,
            } => {
                let checkin = NewCheckin {
                    mood: mood.parse()?,
                    note,
                    help,
                };
                let index = self.circle_index(circle.as_deref())?;
                let audience = self.audience(index, &to)?;
                let id = ItemId::from_random(rand::random());
                self.edit(index, &id, |doc, now| {
                    doc.post_checkin(&id, &checkin, &audience, now)
                })
                .map(|o| o.answer_created(&id))
            }
            Request::Ask {
                circle,
                kind,
                title,
                details,
                needed_by,
                urgent,
                window_start,
                horizon,
                helpers,
                slots,
                to,
            } => {
                let request = NewRequest {
                    kind: kind.parse()?,
                    title,
                    details,
                    needed_by,
                    urgent,
                    window_start,
                    horizon: horizon.as_deref().map(str::parse::<Horizon>).transpose()?,
                    helpers,
                    slots,
                };
                let index = self.circle_index(circle.as_deref())?;
                let audience = self.audience(index, &to)?;
                let id = ItemId::from_random(rand::random());
                self.edit(index, &id, |doc, now| {
                    doc.ask_to(&id, &request, &audience, now)
                })
                .map(|o| o.answer_created(&id))
            }
            Request::Offer {
                circle,
                kind,
                title,
                details,
                when,
                to,
            } => {
                let offer = NewOffer {
                    kind: kind.parse()?,
                    title,
                    details,
                    when,
                };
                let index = self.circle_index(circle.as_deref())?;
                let audience = self.audience(index, &to)?;
                let id = ItemId::from_random(rand::random());
                self.edit(index, &id, |doc, now| {
                    doc.offer(&id, &offer, &audience, now)
                })
                .map(|o| o.answer_created(&id))
            }
            Request::Offers { circle } => {
                let c = self.circle(circle.as_deref())?;
                let filter = FeedFilter {
                    open: true,
                    kind: Some("offer".into()),
                    ..FeedFilter::default()
                };
                Ok(Outcome::Reply(Reply::Items {
                    items: views::items(c.id, &c.doc, None, &filter, now_ms())?,
                }))
            }
            Request::Nudge {
                circle,
                member,
                note,
            } => {
                let index = self.circle_index(circle.as_deref())?;
                let target = self.circle_at(index)?.doc.resolve_member(&member)?;
                let id = ItemId::from_random(rand::random());
                self.edit(index, &id, |doc, now| {
                    doc.nudge(&id, &target, note.as_deref(), now)
                })
                .map(|o| o.answer_created(&id))
            }
            Request::Claim {
                item,
                slot,
                message,
            } => {
                let (index, id) = self.find_item(&item)?;
                let slot = self.slot_named(index, &id, slot.as_deref())?;
                self.edit(index, &id, |doc, now| {
                    doc.claim_with(&id, slot.as_deref(), message.as_deref(), now)
                })
            }
            Request::Unclaim { item, slot } => {
                let (index, id) = self.find_item(&item)?;
                let slot = self.slot_named(index, &id, slot.as_deref())?;
                self.edit(index, &id, |doc, now| {
                    doc.unclaim_slot(&id, slot.as_deref(), now)
                })
            }
            Request::Done { item } => self.edit_item(&item, |doc, id, now| doc.done(id, now)),
            Request::Cancel { item } => self.edit_item(&item, |doc, id, now| doc.cancel(id, now)),
            Request::Thank { item, member, note } => {
                let (index, id) = self.find_item(&item)?;
                let members = match member {
                    Some(m) => vec![self.circle_at(index)?.doc.resolve_member(&m)?],
                    None => Vec::new(),
                };
                self.edit(index, &id, |doc, now| {
                    doc.thank(&id, &members, note.as_deref(), now)
                })
            }
            Request::Edit {
                item,
                title,
                details,
                note,
                needed_by,
                when,
            } => {
                let edit = ItemEdit {
                    title,
                    details,
                    note,
                    needed_by,
                    when,
                };
                self.edit_item(&item, |doc, id, now| doc.edit(id, &edit, now))
            }
            Request::Reply { item, text } => {
                let reply_id = ItemId::from_random(rand::random());
                self.edit_item(&item, |doc, id, now| doc.reply(id, &reply_id, &text, now))
            }
            Request::Quiet { hours } => self.set_quiet(hours),
            Request::Notify { detail } => Ok(Outcome::Reply(self.set_notify(detail))),
            Request::Feed {
                circle,
                limit,
                filter,
            } => {
                let c = self.circle(circle.as_deref())?;
                Ok(Outcome::Reply(Reply::Items {
                    items: views::items(c.id, &c.doc, limit, &filter, now_ms())?,
                }))
            }
            Request::Show { item } => {
                let (index, id) = self.find_item(&item)?;
                let c = self.circle_at(index)?;
                let item = views::item(c.id, &c.doc, id.as_str(), now_ms())
                    .ok_or_else(|| CoreError::UnknownItem(id.as_str().to_string()))?;
                Ok(Outcome::Reply(Reply::Item {
                    item: Box::new(item),
                }))
            }
            Request::Watch { circle } => {
                let c = self.circle(circle.as_deref())?;
                Ok(Outcome::Reply(Reply::Watching {
                    circle: c.id.to_string(),
                }))
            }
            Request::Export { circle } => {
                let c = self.circle(circle.as_deref())?;
                Ok(Outcome::Reply(Reply::Export {
                    export: Box::new(ExportInfo {
                        format: "kith-export-v1".into(),
                        exported_at: views::rfc3339(now_ms()),
                        circle: circle_info(c),
                        members: views::members(&c.doc, &self.member_id),
                        items: views::items(c.id, &c.doc, None, &FeedFilter::default(), now_ms())?,
                    }),
                }))
            }
            Request::Wipe => {
                tracing::warn!("wipe requested: stopping without writing anything more");
                let _ = self.stop.send(Some(Stopped::Wiped));
                Ok(Outcome::Reply(Reply::Wiping))
            }
            Request::Invite {
                circle,
                ttl_secs,
                uses,
            } => self.invite(circle.as_deref(), ttl_secs, uses),
            Request::Join { .. } => Err(Refusal(
                ErrorKind::Internal,
                "join is answered elsewhere".into(),
            )),
            Request::Remove {
                circle,
                member,
                dry_run,
            } => self.remove(circle.as_deref(), &member, dry_run),
            Request::Approve { circle, id } => self.approve(circle.as_deref(), &id),
            Request::Pending { circle } => self.pending(circle.as_deref()),
            Request::Policy { circle, approvals } => self.policy(circle.as_deref(), approvals),
            Request::SetRole {
                circle,
                member,
                role,
            } => self.set_role(circle.as_deref(), &member, &role),
            Request::Invites { circle } => self.invites(circle.as_deref()),
            Request::RevokeInvite { circle, id } => self.revoke_invite(circle.as_deref(), &id),
        }
    }

    fn status(&self) -> Reply {
        Reply::Status(Box::new(StatusInfo {
            running: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            member_id: self.member_id.to_string(),
            name: self.name.clone(),
            peer_id: self.identity.peer_id().to_string(),
            fingerprint: self.member_id.fingerprint(),
            home: self.home.display().to_string(),
            listen: self.net.listening.iter().map(ToString::to_string).collect(),
            requested_listen: self.listen.clone(),
            circles: self.circles.iter().map(circle_info).collect(),
            connected_peers: self.net.connected.iter().map(ToString::to_string).collect(),
            equivocations: self.equivocations(),
        }))
    }

    /// Founds a circle: its record (with the first epoch key) is made durable first, then the
    /// genesis envelope goes through the writer like any edit.
    fn create_circle(&mut self, name: &str) -> Result<Outcome, Refusal> {
        let mut rng = rand::rng();
        let now = now_ms();
        let (mut doc, genesis) = Circle::found_with_nonce(
            &self.member_id.to_string(),
            &self.name,
            name,
            rand::random(),
            now,
        )?;
        // The id commits to the genesis: a joiner takes no other first change.
        let id = CircleId(Circle::id_of_genesis(&genesis)?);
        doc.bind(id.0);
        doc.set_keyring(CircleKeyring::shared(&self.identity, id));
        let record = CircleRecord {
            id,
            epoch_keys: vec![(0, EpochKey::generate(&mut rng))],
        };
        tokio::task::block_in_place(|| self.store.put_circle(&record)).map_err(internal)?;
        self.circles.push(CircleState {
            id,
            doc,
            keys: EpochKeys::new(id, record.epoch_keys),
            locked: Vec::new(),
            stored_keys: 1,
            own_head: None,
        });
        self.net.sync.join(id);
        let index = self.circles.len() - 1;
        tracing::info!(circles = self.circles.len(), "circle founded");
        let outcome =
            self.seal_outcome(index, &genesis, Reply::Created { id: id.to_string() }, None)?;
        self.publish_addresses_later();
        Ok(outcome)
    }

    /// Applies one edit of the item `id` in circle `index` and seals it.
    fn edit(
        &mut self,
        index: usize,
        id: &ItemId,
        edit: impl FnOnce(&mut Circle, i64) -> Result<Vec<u8>, CoreError>,
    ) -> Result<Outcome, Refusal> {
        let now = now_ms();
        let circle = self.circles.get_mut(index).ok_or_else(no_circle)?;
        let change = edit(&mut circle.doc, now)?;
        let event = views::item(circle.id, &circle.doc, id.as_str(), now).map(|item| ItemEvent {
            circle: circle.id,
            item,
        });
        self.know(index, id.as_str());
        let answer = Reply::Done {
            id: id.as_str().to_string(),
        };
        self.seal_outcome(index, &change, answer, event)
    }

    fn edit_item(
        &mut self,
        item: &str,
        edit: impl FnOnce(&mut Circle, &ItemId, i64) -> Result<Vec<u8>, CoreError>,
    ) -> Result<Outcome, Refusal> {
        let (index, id) = self.find_item(item)?;
        self.edit(index, &id, |doc, now| edit(doc, &id, now))
    }

    /// Seals `change` as this member's next envelope in circle `index`, indexes it for
    /// serving, and prepares its push to the other members.
    pub(crate) fn seal_outcome(
        &mut self,
        index: usize,
        change: &[u8],
        answer: Reply,
        event: Option<ItemEvent>,
    ) -> Result<Outcome, Refusal> {
        let circle = self.circles.get_mut(index).ok_or_else(no_circle)?;
        let epoch = circle
            .keys
            .write_epoch(&self.identity, &circle.doc, now_ms())
            .ok_or_else(|| {
                Refusal(
                    ErrorKind::Internal,
                    "the circle's key is being renewed; try again in a moment".into(),
                )
            })?;
        self.seal_outcome_with(index, epoch, change, answer, event)
    }

    /// [`Node::seal_outcome`] with the epoch given: a removal is sealed with a key from
    /// before it that the remaining members hold (`KeyPlan::common_epoch`).
    pub(crate) fn seal_outcome_with(
        &mut self,
        index: usize,
        epoch: u32,
        change: &[u8],
        answer: Reply,
        event: Option<ItemEvent>,
    ) -> Result<Outcome, Refusal> {
        let payload = Payload::Change(change.to_vec());
        self.seal_payload(index, &Seal::Epoch(epoch), &payload, answer, event)
    }

    /// Seals `payload` (a change, or a key share) as this member's next envelope.
    pub(crate) fn seal_payload(
        &mut self,
        index: usize,
        seal: &Seal,
        payload: &Payload,
        answer: Reply,
        event: Option<ItemEvent>,
    ) -> Result<Outcome, Refusal> {
        let circle = self.circles.get_mut(index).ok_or_else(no_circle)?;
        let (seq, prev) = match circle.own_head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, [0u8; 32]),
        };
        let payload = payload.encode();
        let envelope = match seal {
            Seal::Epoch(epoch) => {
                let key = circle.keys.get(*epoch).ok_or_else(|| {
                    Refusal(ErrorKind::Internal, "no key for the circle's epoch".into())
                })?;
                Envelope::seal(
                    &self.identity,
                    key,
                    circle.id,
                    seq,
                    prev,
                    *epoch,
                    &payload,
                    &mut rand::rng(),
                )
            }
            Seal::Direct(readers) => Envelope::seal_direct(
                &self.identity,
                readers,
                circle.id,
                seq,
                prev,
                &payload,
                &mut rand::rng(),
            ),
        }
        .map_err(internal)?;
        circle.own_head = Some((seq, envelope.hash()));
        let push = match self.net.sync.circle_mut(&circle.id) {
            Some(sync) => Some((
                circle.id,
                sync.local_append(envelope.clone()).map_err(internal)?,
            )),
            None => None,
        };
        Ok(Outcome::Write {
            envelope,
            answer,
            event,
            push,
        })
    }

    /// The circle a `--circle` argument names: an id, an id prefix or an exact name; or the
    /// only circle when none is given.
    pub(crate) fn circle_index(&self, selector: Option<&str>) -> Result<usize, Refusal> {
        let Some(selector) = selector.map(str::trim) else {
            return match self.circles.len() {
                0 => Err(Refusal(
                    ErrorKind::NotFound,
                    "you are not in any circle yet (create one with `kith circle create NAME`)"
                        .into(),
                )),
                1 => Ok(0),
                n => Err(Refusal(
                    ErrorKind::Usage,
                    format!("you are in {n} circles; choose one with --circle ID"),
                )),
            };
        };
        let lower = selector.to_lowercase();
        let by_id: Vec<usize> = (0..self.circles.len())
            .filter(|&i| {
                self.circles
                    .get(i)
                    .is_some_and(|c| !lower.is_empty() && c.id.to_string().starts_with(&lower))
            })
            .collect();
        let matches = if by_id.is_empty() {
            (0..self.circles.len())
                .filter(|&i| {
                    self.circles
                        .get(i)
                        .is_some_and(|c| c.doc.name() == selector)
                })
                .collect()
        } else {
            by_id
        };
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Refusal(
                ErrorKind::NotFound,
                format!("no circle matches {selector:?}"),
            )),
            _ => Err(Refusal(
                ErrorKind::NotFound,
                format!("{selector:?} matches several circles; give more of the id"),
            )),
        }
    }

    pub(crate) fn circle(&self, selector: Option<&str>) -> Result<&CircleState, Refusal> {
        self.circle_at(self.circle_index(selector)?)
    }

    pub(crate) fn circle_at(&self, index: usize) -> Result<&CircleState, Refusal> {
        self.circles.get(index).ok_or_else(no_circle)
    }

    /// The slot id `--slot` names on `item`: its number, or its date (YYYY-MM-DD, in this
    /// machine's time zone) when exactly one slot falls on that day.
    fn slot_named(
        &self,
        index: usize,
        id: &ItemId,
        slot: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let Some(text) = slot.map(str::trim) else {
            return Ok(None);
        };
        if text.chars().all(|c| c.is_ascii_digit()) {
            return Ok(Some(text.to_string()));
        }
        let view = self
            .circle_at(index)?
            .doc
            .item_without_replies(id.as_str())
            .ok_or_else(|| CoreError::UnknownItem(id.to_string()))?;
        let date: jiff::civil::Date = text.parse().map_err(|_| {
            Refusal(
                ErrorKind::Usage,
                format!(
                    "cannot understand the slot {text:?}; give its number or its date (2026-12-02)"
                ),
            )
        })?;
        let zone = jiff::tz::TimeZone::system();
        let matching: Vec<&kith_core::SlotView> = view
            .slots
            .iter()
            .filter(|s| {
                jiff::Timestamp::from_millisecond(s.at)
                    .is_ok_and(|t| t.to_zoned(zone.clone()).date() == date)
            })
            .collect();
        match matching.as_slice() {
            [one] => Ok(Some(one.id.clone())),
            [] => Err(CoreError::UnknownSlot {
                id: id.to_string(),
                slot: text.to_string(),
            }
            .into()),
            _ => Err(Refusal(
                ErrorKind::Usage,
                format!("several slots fall on {text}; give the slot's number"),
            )),
        }
    }

    /// The members a `--to` list names in circle `index`, as member ids.
    fn audience(&self, index: usize, to: &[String]) -> Result<Vec<String>, Refusal> {
        let doc = &self.circle_at(index)?.doc;
        to.iter()
            .map(|m| doc.resolve_member(m).map_err(Refusal::from))
            .collect()
    }

    /// Publishes the member's quiet hours in every circle and holds notifications in them.
    fn set_quiet(&mut self, hours: Option<String>) -> Result<Outcome, Refusal> {
        let parsed = hours
            .as_deref()
            .map(str::parse::<crate::notify::QuietHours>)
            .transpose()
            .map_err(|e| Refusal(ErrorKind::Usage, e.to_string()))?;
        let text = parsed.map(|q| q.to_string());
        for index in 0..self.circles.len() {
            let circle = self.circles.get_mut(index).ok_or_else(no_circle)?;
            let change = circle.doc.set_my_quiet_hours(text.as_deref(), now_ms())?;
            let answer = Reply::Done { id: "quiet".into() };
            // Submitted at once: a sealed change must reach the disk even if a later
            // circle refuses.
            let outcome = self.seal_outcome(index, &change, answer, None)?;
            self.submit(outcome, None);
        }
        self.notifications.set_quiet(parsed);
        self.notify_settings.set_quiet_hours(parsed);
        self.save_notify_settings();
        Ok(Outcome::Reply(self.notify_reply()))
    }

    fn set_notify(&mut self, detail: Option<bool>) -> Reply {
        if let Some(detail) = detail {
            self.notifications.set_detail(detail);
            self.notify_settings.detail = detail;
            self.save_notify_settings();
        }
        self.notify_reply()
    }

    fn save_notify_settings(&self) {
        if let Err(e) = self.notify_settings.save(&self.home) {
            tracing::warn!(error = %e, "could not save the notification settings");
        }
    }

    fn notify_reply(&self) -> Reply {
        Reply::Notify {
            detail: self.notify_settings.detail,
            quiet: self.notify_settings.quiet.clone(),
            sink: self.notifications.sink().to_string(),
        }
    }

    /// The item an id or prefix names, across every circle.
    fn find_item(&self, item: &str) -> Result<(usize, ItemId), Refusal> {
        let mut found = Vec::new();
        for (index, circle) in self.circles.iter().enumerate() {
            match circle.doc.resolve_item(item) {
                Ok(id) => found.push((index, id)),
                Err(CoreError::UnknownItem(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match found.len() {
            0 => Err(CoreError::UnknownItem(item.to_string()).into()),
            1 => found.pop().ok_or_else(no_circle),
            _ => Err(CoreError::AmbiguousItem(item.to_string()).into()),
        }
    }
}

/// What a request leads to.
// Lives for one request and is moved once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// Answer at once.
    Reply(Reply),
    /// Answer once `envelope` is durable; then tell watchers about `event` and push the
    /// envelope to connected members.
    Write {
        envelope: Envelope,
        answer: Reply,
        event: Option<ItemEvent>,
        push: Option<(CircleId, Message)>,
    },
}

impl Outcome {
    /// A new item answers with its id rather than "done".
    fn answer_created(self, id: &ItemId) -> Outcome {
        match self {
            Outcome::Write {
                envelope,
                event,
                push,
                ..
            } => Outcome::Write {
                envelope,
                answer: Reply::Created {
                    id: id.as_str().to_string(),
                },
                event,
                push,
            },
            other => other,
        }
    }
}

fn circle_info(c: &CircleState) -> CircleInfo {
    let plan = c.doc.key_plan(
        &c.keys.usable(&c.doc),
        now_ms(),
        crate::epochs::ROTATION_PERIOD_MS,
    );
    CircleInfo {
        id: c.id.to_string(),
        name: c.doc.name(),
        members: c.doc.members().len(),
        removed: c.doc.is_removed(c.doc.me()),
        epoch: plan.write_epoch.unwrap_or(0),
        epochs_held: c.keys.len(),
        policy: c.doc.policy(),
        items: c.doc.item_count(),
        rejected_changes: c.doc.rejected_count(),
        recent_rejections: c
            .doc
            .recent_rejections()
            .into_iter()
            .map(|r| kith_ipc::RejectionInfo {
                writer: r.writer,
                reason: r.reason,
            })
            .collect(),
    }
}

pub(crate) fn no_circle() -> Refusal {
    Refusal(ErrorKind::NotFound, "no such circle".into())
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal(ErrorKind::Internal, e.to_string())
}

/// The actor's loop: control requests, network events, results of network tasks and the
/// sync timer, one at a time. Runs until every request sender is gone, then hands the store
/// back so that `run` can close it.
pub(crate) async fn run(
    mut node: Node,
    mut requests: mpsc::Receiver<Job>,
    mut net_events: mpsc::Receiver<kith_net::NetEvent>,
    mut internal: mpsc::Receiver<Internal>,
) -> Store {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    node.refresh_allowed();
    node.refresh_join_window();
    loop {
        let window_expiry = node.net.join_window_expiry;
        let window_closes = async move {
            match window_expiry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            request = requests.recv() => match request {
                Some((request, reply)) => node.handle(request, reply),
                None => break,
            },
            Some(event) = net_events.recv() => node.on_net_event(event),
            Some(message) = internal.recv() => node.on_internal(message),
            _ = tick.tick() => node.on_tick(),
            () = window_closes => node.refresh_join_window(),
        }
        if node.net.addresses_dirty {
            node.publish_addresses();
        }
        if node.net.keys_dirty {
            // After a local removal: renew this member's private items' keys.
            node.net.keys_dirty = false;
            for index in 0..node.circles.len() {
                node.key_upkeep(index, false);
            }
        }
    }
    node.settle_joins(true);
    let _ = node.net.net.shutdown().await;
    node.store
}
