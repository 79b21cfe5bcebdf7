//! The node actor: owns the identity, the circles' documents and the store.
//!
//! It receives requests from socket connections one at a time, so edits to a circle never
//! race. An edit is applied to the document, sealed into the next envelope of this member's
//! chain, and queued on the store's writer; the answer (and the watch event) goes out from
//! the writer's acknowledgement, once the envelope is durable. Queued writes from several
//! clients share one fsync.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use kith_core::{Circle, CoreError, HelpKind, ItemId, Mood, NewRequest, Payload};
use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, Hash, MemberId};
use kith_ipc::{
    CircleInfo, ErrorKind, ErrorReply, ExportInfo, ItemInfo, Reply, Request, Response, StatusInfo,
};
use kith_store::{CircleRecord, Store, StoreWriter};
use kith_sync::Message;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

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
    /// The epoch new envelopes use: the newest key this node holds.
    pub epoch: u32,
    pub keys: BTreeMap<u32, EpochKey>,
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
            let keys: BTreeMap<u32, EpochKey> = record.epoch_keys.into_iter().collect();
            let mut changes = Vec::with_capacity(envelopes.len());
            let mut own_head = None;
            let sync = net.sync.join(record.id);
            for envelope in &envelopes {
                sync.restore(envelope)
                    .map_err(|e| DaemonError::Load(e.to_string()))?;
                if envelope.header.author == member_id {
                    own_head = Some((envelope.header.seq, envelope.hash()));
                }
                let Some(key) = keys.get(&envelope.header.epoch) else {
                    tracing::warn!(
                        epoch = envelope.header.epoch,
                        "no key for a stored envelope; skipped"
                    );
                    continue;
                };
                // Every stored envelope was verified before it was stored, and the store's
                // rows are authenticated under this device's key: no second check.
                let plaintext = envelope
                    .open_verified(key)
                    .map_err(|e| DaemonError::Load(e.to_string()))?;
                match Payload::decode(&plaintext) {
                    Ok(Payload::Change(change)) => {
                        changes.push((envelope.header.author.to_string(), change));
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable payload skipped"),
                }
            }
            // Envelopes are stored before their changes are checked, so the store can hold
            // changes the rules refuse: they are refused again here, and the rest loads.
            let mut doc = Circle::load(&member_id.to_string(), &[])
                .map_err(|e| DaemonError::Load(e.to_string()))?;
            if doc.apply_signed(&changes).is_err() {
                tracing::warn!(
                    refused = doc.rejected_count(),
                    "stored changes that break the circle's rules were refused again"
                );
            }
            let epoch = keys.keys().next_back().copied().unwrap_or(0);
            // Served from the store from now on (Store::envelope), not held here.
            drop(envelopes);
            circles.push(CircleState {
                id: record.id,
                doc,
                epoch,
                keys,
                own_head,
            });
        }
        let writer = store.writer();
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
        })
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
            Request::CheckIn { circle, mood, note } => {
                let mood: Mood = mood.parse()?;
                let index = self.circle_index(circle.as_deref())?;
                let id = ItemId::from_random(rand::random());
                self.edit(index, &id, |doc, now| {
                    doc.checkin(&id, mood, note.as_deref(), now)
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
            } => {
                let kind: HelpKind = kind.parse()?;
                let index = self.circle_index(circle.as_deref())?;
                let id = ItemId::from_random(rand::random());
                let request = NewRequest {
                    kind,
                    title,
                    details,
                    needed_by,
                    urgent,
                };
                self.edit(index, &id, |doc, now| doc.ask(&id, &request, now))
                    .map(|o| o.answer_created(&id))
            }
            Request::Claim { item } => self.edit_item(&item, |doc, id, now| doc.claim(id, now)),
            Request::Unclaim { item } => self.edit_item(&item, |doc, id, now| doc.unclaim(id, now)),
            Request::Done { item } => self.edit_item(&item, |doc, id, now| doc.done(id, now)),
            Request::Cancel { item } => self.edit_item(&item, |doc, id, now| doc.cancel(id, now)),
            Request::Reply { item, text } => {
                let reply_id = ItemId::from_random(rand::random());
                self.edit_item(&item, |doc, id, now| doc.reply(id, &reply_id, &text, now))
            }
            Request::Feed { circle, limit } => {
                let c = self.circle(circle.as_deref())?;
                Ok(Outcome::Reply(Reply::Items {
                    items: views::items(c.id, &c.doc, limit),
                }))
            }
            Request::Show { item } => {
                let (index, id) = self.find_item(&item)?;
                let c = self.circle_at(index)?;
                let item = views::item(c.id, &c.doc, id.as_str())
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
                        items: views::items(c.id, &c.doc, None),
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
        let id = CircleId::random(&mut rng);
        let now = now_ms();
        let (doc, genesis) = Circle::found(&self.member_id.to_string(), &self.name, name, now)?;
        let record = CircleRecord {
            id,
            epoch_keys: vec![(0, EpochKey::generate(&mut rng))],
        };
        tokio::task::block_in_place(|| self.store.put_circle(&record)).map_err(internal)?;
        let keys = record.epoch_keys.into_iter().collect();
        self.circles.push(CircleState {
            id,
            doc,
            epoch: 0,
            keys,
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
        let event = views::item(circle.id, &circle.doc, id.as_str()).map(|item| ItemEvent {
            circle: circle.id,
            item,
        });
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
        let key = circle
            .keys
            .get(&circle.epoch)
            .ok_or_else(|| Refusal(ErrorKind::Internal, "no key for the circle's epoch".into()))?;
        let (seq, prev) = match circle.own_head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, [0u8; 32]),
        };
        let payload = Payload::Change(change.to_vec()).encode();
        let envelope = Envelope::seal(
            &self.identity,
            key,
            circle.id,
            seq,
            prev,
            circle.epoch,
            &payload,
            &mut rand::rng(),
        )
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

    fn circle(&self, selector: Option<&str>) -> Result<&CircleState, Refusal> {
        self.circle_at(self.circle_index(selector)?)
    }

    pub(crate) fn circle_at(&self, index: usize) -> Result<&CircleState, Refusal> {
        self.circles.get(index).ok_or_else(no_circle)
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
    CircleInfo {
        id: c.id.to_string(),
        name: c.doc.name(),
        members: c.doc.members().len(),
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
    }
    node.settle_joins(true);
    let _ = node.net.net.shutdown().await;
    node.store
}
