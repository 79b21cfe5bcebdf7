//! Connection gating: members in, everyone else out, with a narrow door for joiners.
//!
//! The [`Gate`] is the first behaviour of the swarm, so its verdict on an established
//! connection comes before any other behaviour creates a handler for it: a refused peer gets
//! no protocol at all (it did complete TCP and Noise, which is how its `PeerId` is known).
//!
//! - An *allowed* peer (a member's device) is accepted in both directions, and its connection
//!   is kept alive while idle.
//! - While the *join window* is open, an unknown peer that dials us is accepted on
//!   *probation*: at most `max_probation` such connections at once, each until a deadline.
//!   The actor enforces what probation means for protocols (only `/kith/join/1`).
//! - Anyone else is denied and reported as [`GateEvent::Refused`].
//! - We never dial a peer that is not allowed.
//!
//! The gate also keeps the address book used to dial allowed peers.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    fmt,
    task::{Context, Poll, Waker},
    time::Duration,
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse, upgrade::DeniedUpgrade},
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm, handler::ConnectionEvent,
    },
};
use tokio::time::Instant;

/// Most addresses remembered per peer; the oldest is forgotten first.
const MAX_ADDRESSES_PER_PEER: usize = 8;

/// What the gate reports to the actor.
#[derive(Debug)]
pub(crate) enum GateEvent {
    /// A peer that is neither allowed nor admitted on probation completed a handshake and was
    /// closed.
    Refused { peer: PeerId },
}

/// The reason attached to a denied connection.
#[derive(Debug)]
struct NotMember;

impl fmt::Display for NotMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("peer is not a member of the circle")
    }
}

impl std::error::Error for NotMember {}

/// A probationary peer: its connections and when they must end.
#[derive(Debug)]
struct Probation {
    deadline: Instant,
    connections: HashSet<ConnectionId>,
}

pub(crate) struct Gate {
    allowed: HashSet<PeerId>,
    join_window: bool,
    max_probation: usize,
    probation_timeout: Duration,
    probation: HashMap<PeerId, Probation>,
    addresses: HashMap<PeerId, VecDeque<Multiaddr>>,
    pending: VecDeque<ToSwarm<GateEvent, bool>>,
    waker: Option<Waker>,
}

impl Gate {
    pub(crate) fn new(max_probation: usize, probation_timeout: Duration) -> Self {
        Self {
            allowed: HashSet::new(),
            join_window: false,
            max_probation,
            probation_timeout,
            probation: HashMap::new(),
            addresses: HashMap::new(),
            pending: VecDeque::new(),
            waker: None,
        }
    }

    fn push(&mut self, event: ToSwarm<GateEvent, bool>) {
        self.pending.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn is_allowed(&self, peer: &PeerId) -> bool {
        self.allowed.contains(peer)
    }

    pub(crate) fn is_on_probation(&self, peer: &PeerId) -> bool {
        self.probation.contains_key(peer)
    }

    pub(crate) fn allowed(&self) -> impl Iterator<Item = &PeerId> {
        self.allowed.iter()
    }

    fn probation_connections(&self) -> usize {
        self.probation.values().map(|p| p.connections.len()).sum()
    }

    /// Replaces the allowed set. Returns the peers that lost their place.
    pub(crate) fn set_allowed(&mut self, peers: HashSet<PeerId>) -> Vec<PeerId> {
        let removed: Vec<PeerId> = self.allowed.difference(&peers).copied().collect();
        let added: Vec<PeerId> = peers.difference(&self.allowed).copied().collect();
        self.allowed = peers;
        for peer in added {
            self.promote(peer);
        }
        removed
    }

    /// Makes `peer` allowed (from probation or not). Returns whether it was new.
    pub(crate) fn admit(&mut self, peer: PeerId) -> bool {
        let new = self.allowed.insert(peer);
        if new {
            self.promote(peer);
        }
        new
    }

    /// A newly allowed peer leaves probation, and its open connections are kept alive.
    /// (A peer that loses its place is disconnected by the actor, so it needs no notice.)
    fn promote(&mut self, peer: PeerId) {
        if let Some(probation) = self.probation.remove(&peer) {
            for connection in probation.connections {
                self.push(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(connection),
                    event: true,
                });
            }
        }
    }

    /// Opens or closes the join window. Closing it ends probation for everyone; the returned
    /// peers must be disconnected.
    pub(crate) fn set_join_window(&mut self, open: bool) -> Vec<PeerId> {
        self.join_window = open;
        if open {
            Vec::new()
        } else {
            self.probation.drain().map(|(peer, _)| peer).collect()
        }
    }

    /// Ends probation for `peer` (it misbehaved); the caller disconnects it.
    pub(crate) fn end_probation(&mut self, peer: &PeerId) {
        self.probation.remove(peer);
    }

    /// The earliest probation deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.probation.values().map(|p| p.deadline).min()
    }

    /// Probationary peers whose deadline has passed; they are removed from probation and
    /// must be disconnected.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .probation
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &expired {
            self.probation.remove(peer);
        }
        expired
    }

    /// Remembers an address for `peer`. Returns whether it was new.
    pub(crate) fn add_address(&mut self, peer: PeerId, addr: Multiaddr) -> bool {
        let book = self.addresses.entry(peer).or_default();
        if book.contains(&addr) {
            return false;
        }
        if book.len() >= MAX_ADDRESSES_PER_PEER {
            book.pop_front();
        }
        book.push_back(addr);
        true
    }

    pub(crate) fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addresses
            .get(peer)
            .map(|b| b.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn forget_connection(&mut self, peer: Option<PeerId>, connection: ConnectionId) {
        let Some(peer) = peer else { return };
        if let Some(p) = self.probation.get_mut(&peer) {
            p.connections.remove(&connection);
            if p.connections.is_empty() {
                self.probation.remove(&peer);
            }
        }
    }

    fn deny(&mut self, peer: PeerId) -> ConnectionDenied {
        tracing::debug!(%peer, "refusing connection from a non-member");
        self.push(ToSwarm::GenerateEvent(GateEvent::Refused { peer }));
        ConnectionDenied::new(NotMember)
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = GateHandler;
    type ToSwarm = GateEvent;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.allowed.contains(&peer) {
            return Ok(GateHandler { keep_alive: true });
        }
        if self.join_window && self.probation_connections() < self.max_probation {
            let deadline = Instant::now() + self.probation_timeout;
            self.probation
                .entry(peer)
                .or_insert_with(|| Probation {
                    deadline,
                    connections: HashSet::new(),
                })
                .connections
                .insert(connection);
            tracing::debug!(%peer, "accepting connection on probation");
            return Ok(GateHandler { keep_alive: false });
        }
        Err(self.deny(peer))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        match maybe_peer {
            Some(peer) if !self.allowed.contains(&peer) => Err(ConnectionDenied::new(NotMember)),
            Some(peer) => Ok(self.addresses(&peer)),
            None => Ok(Vec::new()),
        }
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.allowed.contains(&peer) {
            Ok(GateHandler { keep_alive: true })
        } else {
            Err(ConnectionDenied::new(NotMember))
        }
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(closed) => {
                self.forget_connection(Some(closed.peer_id), closed.connection_id);
            }
            FromSwarm::ListenFailure(failure) => {
                self.forget_connection(failure.peer_id, failure.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<GateEvent, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(event) => Poll::Ready(event),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Per-connection half of the gate: speaks no protocol, only decides whether an idle
/// connection stays open (members: yes; probation: no).
#[derive(Debug)]
pub(crate) struct GateHandler {
    keep_alive: bool,
}

impl ConnectionHandler for GateHandler {
    /// New keep-alive decision.
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, keep_alive: bool) {
        self.keep_alive = keep_alive;
    }

    fn on_connection_event(&mut self, _event: ConnectionEvent<DeniedUpgrade, DeniedUpgrade>) {}
}
