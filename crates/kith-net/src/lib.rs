//! Kith's network actor: the libp2p swarm that connects a member's daemon to the other
//! members' daemons, and to no one else.
//!
//! # Model
//!
//! One task (the *actor*) owns the libp2p `Swarm`. [`spawn`] starts it on the current tokio
//! runtime and returns a cloneable [`NetHandle`] plus a bounded stream of [`NetEvent`]s. Every
//! [`NetHandle`] method sends one command carrying a oneshot reply; when the actor is gone
//! they return [`NetError::Stopped`] instead of panicking. The actor ends on
//! [`NetHandle::shutdown`] or when the last handle is dropped.
//!
//! Who sends the actor what:
//!
//! - the daemon, through [`NetHandle`]: the member set, the join window, admissions,
//!   addresses, dials, outbound requests, queries, shutdown;
//! - the swarm: connections, inbound requests and responses, mDNS discoveries;
//! - its own timer (every 250 ms): probation deadlines and reconnection attempts.
//!
//! # Transport and protocols
//!
//! TCP + Noise (XX, ed25519 identities: the `PeerId` *is* the device key) + Yamux, with
//! identify and ping. Kith traffic uses two request-response protocols carrying opaque bytes
//! in length-prefixed frames (4-byte big-endian length, then the bytes), bounded by
//! [`NetConfig::max_message`] (2 MiB by default) in both directions and checked before any
//! allocation:
//!
//! - `/kith/sync/1` ([`Protocol::Sync`]): members only;
//! - `/kith/join/1` ([`Protocol::Join`]): members, and peers on probation.
//!
//! This crate does not interpret the bytes. Inbound requests arrive as
//! [`NetEvent::InboundRequest`]; the daemon answers by sending on `respond`. Dropping
//! `respond` (or not answering within [`NetConfig::request_timeout`]) sends no answer, and
//! the request fails at the remote with an error.
//!
//! # Who may connect
//!
//! - **Members.** [`NetHandle::set_allowed`] sets the peers (members' devices) that may
//!   connect and that we dial. Anyone else who dials us completes TCP and Noise (that is how
//!   their `PeerId` becomes known), then the connection is closed before any other protocol
//!   runs, and [`NetEvent::Refused`] is emitted. Removing a peer from the set closes its
//!   connections at once. We never dial a peer outside the set.
//! - **Join window.** While [`NetHandle::set_join_window`]`(true)`, an unknown peer that dials
//!   us is accepted *on probation* ([`NetEvent::Connected`] with `probation: true`): it may
//!   only use `/kith/join/1`; a `/kith/sync/1` request from it is refused, reported as
//!   [`NetEvent::Refused`] (never as an inbound request), and its connections are closed. At
//!   most [`NetConfig::max_probation`] probationary connections exist at once, and each
//!   probationary peer is disconnected after [`NetConfig::probation_timeout`] unless
//!   [`NetHandle::admit`]ted, which makes it allowed. Closing the window ends every
//!   probation at once.
//! - **Joining (the other side).** A joiner must add the inviter to its own allowed set
//!   (`set_allowed` or `admit`) and its address (`add_address`) *before* dialing: outbound
//!   dials to peers outside the allowed set are refused locally.
//! - `admit` adds one peer; `set_allowed` *replaces* the whole set, so the daemon's next
//!   `set_allowed` must include admitted peers it wants to keep.
//!
//! # Limits
//!
//! Besides the 2 MiB frames (16 KiB for join requests): at most 32 inbound connections being
//! set up at once, 256 established inbound connections, 4 connections per peer, and 8
//! concurrent requests per connection and protocol (libp2p drops further streams unread). A
//! request announcing more than its limit is not read: only its length is, and it is
//! reported as [`NetEvent::Oversized`] with the sender, so the daemon can count it against
//! the peer. A peer on probation can therefore make us buffer at most a few small join
//! frames before its first `/kith/sync/1` request gets it disconnected.
//!
//! # Reconnection and discovery
//!
//! Allowed peers with known addresses ([`NetHandle::add_address`], or mDNS) are dialed when
//! they become allowed and again after a disconnection, with a backoff starting at
//! [`NetConfig::backoff_initial`] and doubling up to [`NetConfig::backoff_max`]; a
//! connection that stayed up for a while resets the backoff. With [`NetConfig::mdns`], peers
//! found on the local network are reported as [`NetEvent::Discovered`] and dialed only if
//! they are allowed.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), kith_net::NetError> {
//! use std::collections::HashSet;
//! use kith_net::{NetConfig, NetEvent, Protocol, spawn};
//!
//! let keypair = libp2p_identity::Keypair::generate_ed25519();
//! let mut config = NetConfig::new(keypair);
//! config.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr")];
//! let (net, mut events) = spawn(config)?;
//!
//! let friend: libp2p_identity::PeerId = libp2p_identity::Keypair::generate_ed25519()
//!     .public()
//!     .to_peer_id();
//! net.set_allowed(HashSet::from([friend])).await?;
//! net.add_address(friend, "/ip4/192.0.2.7/tcp/4001".parse().expect("valid multiaddr"))
//!     .await?;
//!
//! while let Some(event) = events.recv().await {
//!     match event {
//!         NetEvent::Connected { peer, .. } => {
//!             let answer = net.request(peer, Protocol::Sync, b"hello".to_vec()).await?;
//!             let _ = answer;
//!         }
//!         NetEvent::InboundRequest { respond, .. } => {
//!             let _ = respond.send(b"hi".to_vec());
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod actor;
mod codec;
mod gate;

use std::{collections::HashSet, fmt, time::Duration};

pub use codec::FrameTooLarge;
pub use libp2p::{Multiaddr, PeerId};
use libp2p_identity::Keypair;
use tokio::sync::{mpsc, oneshot};

/// Largest request or response by default: 2 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Largest `/kith/join/1` request by default: 16 KiB.
pub const DEFAULT_MAX_JOIN_REQUEST: usize = 16 * 1024;

/// Protocol name of Kith sync.
pub const SYNC_PROTOCOL: &str = "/kith/sync/1";
/// Protocol name of Kith join.
pub const JOIN_PROTOCOL: &str = "/kith/join/1";

/// The two Kith request-response protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `/kith/sync/1`: between members only.
    Sync,
    /// `/kith/join/1`: also open to peers on probation while the join window is open.
    Join,
}

impl Protocol {
    /// The libp2p protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Sync => SYNC_PROTOCOL,
            Protocol::Join => JOIN_PROTOCOL,
        }
    }
}

/// Settings of the network actor. [`NetConfig::new`] gives the defaults.
#[derive(Clone)]
pub struct NetConfig {
    /// This device's identity; its public key is our `PeerId`, proven by the Noise handshake.
    pub keypair: Keypair,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0`. Empty: dial only.
    pub listen: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Largest request and response, in bytes, in both directions.
    pub max_message: usize,
    /// Largest `/kith/join/1` request (joins are small; a peer on probation should not
    /// make us read megabytes). At most `max_message`.
    pub max_join_request: usize,
    /// How long an outbound request may wait for its response, and how long the daemon has
    /// to answer an inbound one.
    pub request_timeout: Duration,
    /// Most probationary (joining) connections at once while the join window is open.
    pub max_probation: usize,
    /// How long a peer on probation may stay connected without being admitted.
    pub probation_timeout: Duration,
    /// First delay before redialing a disconnected allowed peer.
    pub backoff_initial: Duration,
    /// Longest delay between redials.
    pub backoff_max: Duration,
    /// A connection that lasted at least this long resets the backoff when it closes.
    pub stable_after: Duration,
    /// How long an idle non-member (probationary) connection stays open. Members'
    /// connections are kept open while idle.
    pub idle_timeout: Duration,
    /// Capacity of the event channel returned by [`spawn`].
    pub event_capacity: usize,
    /// Events held by the actor while the event channel is full; beyond this, events are
    /// dropped (an inbound request dropped this way fails at the remote).
    pub event_backlog: usize,
}

impl NetConfig {
    /// Defaults: no listen address, no mDNS, 2 MiB messages, 30 s request timeout, 8
    /// probationary connections for 15 s each, backoff 1 s doubling to 60 s.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: Vec::new(),
            mdns: false,
            max_message: DEFAULT_MAX_MESSAGE,
            max_join_request: DEFAULT_MAX_JOIN_REQUEST,
            request_timeout: Duration::from_secs(30),
            max_probation: 8,
            probation_timeout: Duration::from_secs(15),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            event_capacity: 256,
            event_backlog: 4096,
        }
    }
}

impl fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material: only the peer id.
        f.debug_struct("NetConfig")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .field("listen", &self.listen)
            .field("mdns", &self.mdns)
            .field("max_message", &self.max_message)
            .field("max_join_request", &self.max_join_request)
            .field("request_timeout", &self.request_timeout)
            .field("max_probation", &self.max_probation)
            .field("probation_timeout", &self.probation_timeout)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("stable_after", &self.stable_after)
            .field("idle_timeout", &self.idle_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("event_backlog", &self.event_backlog)
            .finish()
    }
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The actor has ended (shutdown, or every handle dropped).
    #[error("the network actor has stopped")]
    Stopped,
    /// [`spawn`] was called outside a tokio runtime.
    #[error("no tokio runtime to run the network actor on")]
    NoRuntime,
    /// The transport or a behaviour could not be set up.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A message exceeds [`NetConfig::max_message`]; nothing was sent.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer is not in the allowed set, so we do not dial it.
    #[error("peer is not allowed")]
    NotAllowed,
    /// No address is known for the peer.
    #[error("no known address for the peer")]
    NoAddress,
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Dial(String),
    /// The request got no response in time.
    #[error("request timed out")]
    Timeout,
    /// The connection closed before the response arrived.
    #[error("connection closed before the response")]
    ConnectionClosed,
    /// The remote does not speak the protocol to us (e.g. we are not a member there).
    #[error("the remote does not support the protocol")]
    Unsupported,
    /// The stream failed: among others, the remote gave no answer or a frame was too large.
    #[error("request failed: {0}")]
    Io(String),
}

/// What the actor reports. Peer ids are public keys, not payloads; payloads are never logged.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// We listen on a new address.
    Listening {
        /// The address.
        addr: Multiaddr,
    },
    /// The first connection to `peer` is established.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its address on this connection (for an inbound connection, an ephemeral port).
        addr: Multiaddr,
        /// The peer is not allowed but was let in on probation (join window): only
        /// `/kith/join/1` works until it is [`NetHandle::admit`]ted.
        probation: bool,
    },
    /// The last connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A request from `peer`. Answer by sending on `respond`; dropping it sends no answer.
    InboundRequest {
        /// The sender.
        peer: PeerId,
        /// Which protocol it came on.
        protocol: Protocol,
        /// The opaque request (at most [`NetConfig::max_message`] bytes).
        bytes: Vec<u8>,
        /// The answer (at most [`NetConfig::max_message`] bytes; a larger one is dropped).
        respond: oneshot::Sender<Vec<u8>>,
    },
    /// mDNS found `peer` on the local network (it may or may not be allowed).
    Discovered {
        /// The peer.
        peer: PeerId,
        /// Its announced addresses.
        addrs: Vec<Multiaddr>,
    },
    /// `peer` sent a request longer than the limit ([`NetConfig::max_message`], or
    /// [`NetConfig::max_join_request`] on `/kith/join/1`). Only its length was read; it got
    /// no answer. The daemon decides whether that counts against the peer.
    Oversized {
        /// The sender.
        peer: PeerId,
        /// Which protocol it came on.
        protocol: Protocol,
        /// The length it announced.
        len: u64,
    },
    /// `peer` was refused: it connected without being allowed (and outside the join
    /// window, or with the window full), or it tried `/kith/sync/1` on probation.
    Refused {
        /// The peer.
        peer: PeerId,
    },
}

/// Commands from handles to the actor; each carries its reply.
#[derive(Debug)]
enum Command {
    SetAllowed {
        peers: HashSet<PeerId>,
        reply: oneshot::Sender<()>,
    },
    SetJoinWindow {
        open: bool,
        reply: oneshot::Sender<()>,
    },
    Admit {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    AddAddress {
        peer: PeerId,
        addr: Multiaddr,
        reply: oneshot::Sender<()>,
    },
    Dial {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Request {
        peer: PeerId,
        protocol: Protocol,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 64;

/// A cloneable handle to the network actor.
#[derive(Debug, Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    max_message: usize,
}

/// Starts the network actor on the current tokio runtime: builds the swarm, starts listening
/// on `config.listen`, and returns the handle and the event stream.
///
/// Listening happens in the background: the actual addresses (port 0 resolved) arrive as
/// [`NetEvent::Listening`] and through [`NetHandle::listen_addrs`].
pub fn spawn(config: NetConfig) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
    let local_peer_id = config.keypair.public().to_peer_id();
    let max_message = config.max_message;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
    let actor = actor::Actor::new(config, command_rx)?;
    runtime.spawn(actor.run(event_tx));
    Ok((
        NetHandle {
            commands: command_tx,
            local_peer_id,
            max_message,
        },
        event_rx,
    ))
}

impl NetHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Our own peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Replaces the set of allowed peers (the members' devices). Peers that lose their place
    /// are disconnected; new ones with known addresses are dialed.
    pub async fn set_allowed(&self, peers: HashSet<PeerId>) -> Result<(), NetError> {
        self.call(|reply| Command::SetAllowed { peers, reply })
            .await
    }

    /// Opens or closes the join window (see the crate docs). Closing it disconnects every
    /// peer still on probation.
    pub async fn set_join_window(&self, open: bool) -> Result<(), NetError> {
        self.call(|reply| Command::SetJoinWindow { open, reply })
            .await
    }

    /// Adds `peer` to the allowed set; a peer on probation becomes a member connection
    /// (sync allowed, no deadline).
    pub async fn admit(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::Admit { peer, reply }).await
    }

    /// Remembers an address of `peer`, used to dial and redial it while it is allowed.
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::AddAddress { peer, addr, reply })
            .await
    }

    /// Dials an allowed peer at its known addresses; returns once a connection is up (or at
    /// once if one already is). The remote may still refuse us and close it.
    pub async fn dial(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::Dial { peer, reply }).await?
    }

    /// Sends a request and waits for the response (bounded by [`NetConfig::max_message`]
    /// and [`NetConfig::request_timeout`]). Dials the peer first if needed (allowed peers
    /// only).
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: Protocol,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        if bytes.len() > self.max_message {
            return Err(NetError::TooLarge {
                len: bytes.len(),
                max: self.max_message,
            });
        }
        self.call(|reply| Command::Request {
            peer,
            protocol,
            bytes,
            reply,
        })
        .await?
    }

    /// The addresses we listen on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Peers with at least one open connection (members and probationary peers).
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Ends the actor: every connection closes, pending requests fail with
    /// [`NetError::Stopped`]. Returns once the swarm is dropped. Idempotent: a second call
    /// returns [`NetError::Stopped`].
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}
