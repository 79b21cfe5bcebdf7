//! The actor that owns the swarm. See the crate docs for who sends it what.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify, mdns, noise, ping,
    request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport},
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    Command, JOIN_PROTOCOL, NetConfig, NetError, NetEvent, Protocol, SYNC_PROTOCOL,
    codec::{FrameCodec, RequestFrame, ResponseFrame},
    gate::{Gate, GateEvent},
};

/// Concurrent requests per connection and protocol. With 2 MiB frames this bounds what one
/// connection can make us buffer (8 × 2 MiB per protocol).
const MAX_STREAMS_PER_CONNECTION: usize = 8;

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// First, so that refused peers never reach the other behaviours.
    gate: Gate,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
    join: request_response::Behaviour<FrameCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Redial schedule of one allowed peer.
#[derive(Debug)]
struct Redial {
    /// When to dial next; `None` while connected.
    next: Option<Instant>,
    /// Delay after the next attempt.
    delay: Duration,
}

/// Where the response to one of our requests goes.
type ResponseReply = oneshot::Sender<Result<Vec<u8>, NetError>>;

type Answer = Pin<
    Box<
        dyn Future<
                Output = (
                    Protocol,
                    request_response::ResponseChannel<ResponseFrame>,
                    Option<Vec<u8>>,
                ),
            > + Send,
    >,
>;

pub(crate) struct Actor {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// Events waiting for room in `events` (bounded by `config.event_backlog`).
    backlog: VecDeque<NetEvent>,
    events_open: bool,
    config: NetConfig,
    pending_requests: HashMap<(Protocol, OutboundRequestId), ResponseReply>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    /// The daemon's answers to inbound requests, each bounded by the request timeout.
    answers: FuturesUnordered<Answer>,
    redial: HashMap<PeerId, Redial>,
    /// When each open connection was established, to tell stable ones from flapping ones.
    opened: HashMap<ConnectionId, Instant>,
}

impl Actor {
    pub(crate) fn new(
        config: NetConfig,
        commands: mpsc::Receiver<Command>,
    ) -> Result<Self, NetError> {
        let local_peer_id = config.keypair.public().to_peer_id();
        let codec = FrameCodec {
            max_request: config.max_message,
            max_response: config.max_message,
        };
        let join_codec = FrameCodec {
            max_request: config.max_join_request.min(config.max_message),
            max_response: config.max_message,
        };
        let rr_config = request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), local_peer_id)
                    .map_err(|e| NetError::Setup(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(32))
            .with_max_established_per_peer(Some(4))
            .with_max_established_incoming(Some(256));
        let behaviour = Behaviour {
            gate: Gate::new(config.max_probation, config.probation_timeout),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new("/kith/1".to_owned(), config.keypair.public())
                    .with_agent_version("kith".to_owned()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            sync: request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                rr_config.clone(),
            ),
            join: request_response::Behaviour::with_codec(
                join_codec,
                [(StreamProtocol::new(JOIN_PROTOCOL), ProtocolSupport::Full)],
                rr_config,
            ),
            mdns: Toggle::from(mdns),
        };
        let idle_timeout = config.idle_timeout;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(format!("tcp: {e}")))?
            // QUIC brings its own TLS 1.3 handshake, authenticated by the same ed25519 key,
            // so the gate sees the same PeerId either way.
            .with_quic()
            .with_behaviour(|_| behaviour)
            .map_err(|e| NetError::Setup(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self {
            swarm,
            commands,
            backlog: VecDeque::new(),
            events_open: true,
            config,
            pending_requests: HashMap::new(),
            pending_dials: HashMap::new(),
            answers: FuturesUnordered::new(),
            redial: HashMap::new(),
            opened: HashMap::new(),
        })
    }

    pub(crate) async fn run(mut self, events: mpsc::Sender<NetEvent>) {
        // One timer, moved to the earliest redial or probation deadline and disabled when
        // there is none: a wakeup costs a few milliseconds of CPU here (the swarm and every
        // behaviour are polled), so an idle node wakes only for what is due.
        let wake = tokio::time::sleep_until(Instant::now());
        tokio::pin!(wake);
        let shutdown_reply = loop {
            let due = self.next_deadline();
            if let Some(due) = due
                && wake.deadline() != due
            {
                wake.as_mut().reset(due);
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((protocol, channel, answer)) = self.answers.next(), if !self.answers.is_empty() => {
                    self.on_answer(protocol, channel, answer);
                }
                permit = events.reserve(), if self.events_open && !self.backlog.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(event) = self.backlog.pop_front() {
                                permit.send(event);
                            }
                        }
                        Err(_) => {
                            // Nobody listens any more: keep serving the handles, drop events.
                            self.events_open = false;
                            self.backlog.clear();
                        }
                    }
                }
                () = &mut wake, if due.is_some() => self.on_deadline(),
            }
        };
        tracing::debug!("network actor stopping");
        let Self {
            swarm, commands, ..
        } = self;
        drop(commands);
        drop(swarm);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn emit(&mut self, event: NetEvent) {
        if !self.events_open {
            return;
        }
        if self.backlog.len() >= self.config.event_backlog {
            tracing::warn!("network event backlog full; dropping an event");
            return;
        }
        self.backlog.push_back(event);
    }

    fn is_connected(&self, peer: &PeerId) -> bool {
        self.swarm.is_connected(peer)
    }

    fn disconnect(&mut self, peer: PeerId) {
        if self.swarm.disconnect_peer_id(peer).is_ok() {
            tracing::debug!(%peer, "disconnecting");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SetAllowed { peers, reply } => {
                let removed = self.swarm.behaviour_mut().gate.set_allowed(peers);
                for peer in removed {
                    self.redial.remove(&peer);
                    self.disconnect(peer);
                }
                let allowed: Vec<PeerId> = self.swarm.behaviour().gate.allowed().copied().collect();
                for peer in allowed {
                    self.schedule_soon(peer);
                }
                let _ = reply.send(());
            }
            Command::SetJoinWindow { open, reply } => {
                let ended = self.swarm.behaviour_mut().gate.set_join_window(open);
                for peer in ended {
                    self.disconnect(peer);
                }
                let _ = reply.send(());
            }
            Command::Admit { peer, reply } => {
                self.swarm.behaviour_mut().gate.admit(peer);
                self.schedule_soon(peer);
                let _ = reply.send(());
            }
            Command::AddAddress { peer, addr, reply } => {
                if self.swarm.behaviour_mut().gate.add_address(peer, addr) {
                    self.schedule_soon(peer);
                }
                let _ = reply.send(());
            }
            Command::Dial { peer, reply } => self.on_dial(peer, reply),
            Command::Request {
                peer,
                protocol,
                bytes,
                reply,
            } => {
                if bytes.len() > self.config.max_message {
                    let _ = reply.send(Err(NetError::TooLarge {
                        len: bytes.len(),
                        max: self.config.max_message,
                    }));
                    return;
                }
                let gate = &self.swarm.behaviour().gate;
                if !gate.is_allowed(&peer) && !gate.is_on_probation(&peer) {
                    let _ = reply.send(Err(NetError::NotAllowed));
                    return;
                }
                let addresses = gate.addresses(&peer);
                let behaviour = self.swarm.behaviour_mut();
                let id = match protocol {
                    Protocol::Sync => behaviour.sync.send_request_with_addresses(
                        &peer,
                        RequestFrame::Bytes(bytes),
                        addresses,
                    ),
                    Protocol::Join => behaviour.join.send_request_with_addresses(
                        &peer,
                        RequestFrame::Bytes(bytes),
                        addresses,
                    ),
                };
                self.pending_requests.insert((protocol, id), reply);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Shutdown { reply } => {
                // Handled in `run`; kept for exhaustiveness.
                let _ = reply.send(());
            }
        }
    }

    fn on_dial(&mut self, peer: PeerId, reply: oneshot::Sender<Result<(), NetError>>) {
        let gate = &self.swarm.behaviour().gate;
        if !gate.is_allowed(&peer) {
            let _ = reply.send(Err(NetError::NotAllowed));
            return;
        }
        if self.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        let addresses = gate.addresses(&peer);
        if addresses.is_empty() {
            let _ = reply.send(Err(NetError::NoAddress));
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                self.pending_dials.entry(peer).or_default().push(reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dial(e.to_string())));
            }
        }
    }

    /// Makes an allowed, disconnected peer with addresses due for a dial now (keeping its
    /// backoff delay).
    fn schedule_soon(&mut self, peer: PeerId) {
        let gate = &self.swarm.behaviour().gate;
        if !gate.is_allowed(&peer) || gate.addresses(&peer).is_empty() || self.is_connected(&peer) {
            return;
        }
        let initial = self.config.backoff_initial;
        let entry = self.redial.entry(peer).or_insert(Redial {
            next: None,
            delay: initial,
        });
        entry.next = Some(Instant::now());
    }

    /// The earliest redial or probation deadline, if any.
    fn next_deadline(&self) -> Option<Instant> {
        let redial = self.redial.values().filter_map(|r| r.next).min();
        let probation = self.swarm.behaviour().gate.next_deadline();
        match (redial, probation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Disconnects peers whose probation ended and dials peers whose redial is due.
    fn on_deadline(&mut self) {
        let now = Instant::now();
        for peer in self.swarm.behaviour_mut().gate.expired(now) {
            tracing::debug!(%peer, "probation deadline passed");
            self.disconnect(peer);
        }
        let due: Vec<PeerId> = self
            .redial
            .iter()
            .filter(|(_, r)| r.next.is_some_and(|next| next <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            let gate = &self.swarm.behaviour().gate;
            let addresses = gate.addresses(&peer);
            if !gate.is_allowed(&peer) || addresses.is_empty() {
                self.redial.remove(&peer);
                continue;
            }
            let max = self.config.backoff_max;
            if let Some(r) = self.redial.get_mut(&peer) {
                r.next = Some(now + r.delay);
                r.delay = (r.delay * 2).min(max);
            }
            if self.is_connected(&peer) {
                continue;
            }
            tracing::debug!(%peer, "redialing");
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    fn on_answer(
        &mut self,
        protocol: Protocol,
        channel: request_response::ResponseChannel<ResponseFrame>,
        answer: Option<Vec<u8>>,
    ) {
        let Some(bytes) = answer else {
            return; // no answer: the remote's request fails
        };
        if bytes.len() > self.config.max_message {
            tracing::warn!(
                len = bytes.len(),
                "dropping a response over the message limit"
            );
            return;
        }
        self.send_response(protocol, channel, ResponseFrame::Bytes(bytes));
    }

    /// Ends `peer`'s probation for misbehaving: disconnected and reported as refused.
    fn refuse_on_probation(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().gate.end_probation(&peer);
        self.disconnect(peer);
        self.emit(NetEvent::Refused { peer });
    }

    fn send_response(
        &mut self,
        protocol: Protocol,
        channel: request_response::ResponseChannel<ResponseFrame>,
        frame: ResponseFrame,
    ) {
        let behaviour = self.swarm.behaviour_mut();
        let _ = match protocol {
            Protocol::Sync => behaviour.sync.send_response(channel, frame),
            Protocol::Join => behaviour.join.send_response(channel, frame),
        };
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.emit(NetEvent::Listening { addr: address });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.opened.insert(connection_id, Instant::now());
                if let Some(r) = self.redial.get_mut(&peer_id) {
                    r.next = None;
                }
                if let Some(waiters) = self.pending_dials.remove(&peer_id) {
                    for waiter in waiters {
                        let _ = waiter.send(Ok(()));
                    }
                }
                if num_established.get() == 1 {
                    let probation = !self.swarm.behaviour().gate.is_allowed(&peer_id);
                    tracing::debug!(peer = %peer_id, probation, "connected");
                    self.emit(NetEvent::Connected {
                        peer: peer_id,
                        addr: endpoint.get_remote_address().clone(),
                        probation,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                let opened = self.opened.remove(&connection_id);
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, "disconnected");
                    self.emit(NetEvent::Disconnected { peer: peer_id });
                    self.after_disconnect(peer_id, opened);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::debug!(%peer, "dial failed");
                if let Some(waiters) = self.pending_dials.remove(&peer) {
                    let reason = error.to_string();
                    for waiter in waiters {
                        let _ = waiter.send(Err(NetError::Dial(reason.clone())));
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                peer_id: Some(peer),
                ..
            } => {
                tracing::debug!(%peer, "incoming connection failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn after_disconnect(&mut self, peer: PeerId, opened: Option<Instant>) {
        let gate = &self.swarm.behaviour().gate;
        if !gate.is_allowed(&peer) || gate.addresses(&peer).is_empty() {
            return;
        }
        let now = Instant::now();
        let stable = opened.is_some_and(|t| now.duration_since(t) >= self.config.stable_after);
        let initial = self.config.backoff_initial;
        let r = self.redial.entry(peer).or_insert(Redial {
            next: None,
            delay: initial,
        });
        if stable {
            r.delay = initial;
        }
        r.next = Some(now + r.delay);
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gate(GateEvent::Refused { peer }) => {
                self.emit(NetEvent::Refused { peer });
            }
            BehaviourEvent::Sync(event) => self.on_request_response(Protocol::Sync, event),
            BehaviourEvent::Join(event) => self.on_request_response(Protocol::Join, event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if self.swarm.behaviour().gate.is_allowed(&peer) {
                        let mut new = false;
                        for addr in &addrs {
                            new |= self
                                .swarm
                                .behaviour_mut()
                                .gate
                                .add_address(peer, addr.clone());
                        }
                        if new {
                            self.schedule_soon(peer);
                        }
                    }
                    self.emit(NetEvent::Discovered { peer, addrs });
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_))
            | BehaviourEvent::Limits(_)
            | BehaviourEvent::Identify(_)
            | BehaviourEvent::Ping(_) => {}
        }
    }

    fn on_request_response(
        &mut self,
        protocol: Protocol,
        event: request_response::Event<RequestFrame, ResponseFrame>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if protocol == Protocol::Sync && !self.swarm.behaviour().gate.is_allowed(&peer) {
                    // A peer on probation tried to sync: no answer, out it goes.
                    tracing::debug!(%peer, "sync request from a non-member; disconnecting");
                    drop(channel);
                    self.refuse_on_probation(peer);
                    return;
                }
                let request = match request {
                    RequestFrame::Bytes(bytes) => bytes,
                    RequestFrame::TooLarge { len } => {
                        tracing::debug!(%peer, ?protocol, len, "oversized request dropped");
                        self.send_response(protocol, channel, ResponseFrame::Reset);
                        if !self.swarm.behaviour().gate.is_allowed(&peer) {
                            // On probation, one strike is enough.
                            self.refuse_on_probation(peer);
                            return;
                        }
                        self.emit(NetEvent::Oversized {
                            peer,
                            protocol,
                            len,
                        });
                        return;
                    }
                };
                let (respond, answer) = oneshot::channel();
                self.emit(NetEvent::InboundRequest {
                    peer,
                    protocol,
                    bytes: request,
                    respond,
                });
                let timeout = self.config.request_timeout;
                self.answers.push(Box::pin(async move {
                    let answer = tokio::time::timeout(timeout, answer)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    (protocol, channel, answer)
                }));
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_requests.remove(&(protocol, request_id)) {
                    let ResponseFrame::Bytes(bytes) = response else {
                        return; // read_response never makes a reset
                    };
                    let _ = reply.send(Ok(bytes));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, ?protocol, "outbound request failed");
                if let Some(reply) = self.pending_requests.remove(&(protocol, request_id)) {
                    let error = match error {
                        OutboundFailure::DialFailure => {
                            NetError::Dial("could not connect".to_owned())
                        }
                        OutboundFailure::Timeout => NetError::Timeout,
                        OutboundFailure::ConnectionClosed => NetError::ConnectionClosed,
                        OutboundFailure::UnsupportedProtocols => NetError::Unsupported,
                        OutboundFailure::Io(e) => NetError::Io(e.to_string()),
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, .. } => {
                tracing::debug!(%peer, ?protocol, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
