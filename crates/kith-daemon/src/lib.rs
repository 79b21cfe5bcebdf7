//! The Kith node: opens the encrypted store, rebuilds each circle's document, and serves the
//! control socket that the `kith` command line talks to.
//!
//! Who talks to whom:
//! - the socket server ([`server`]) accepts connections and forwards each request to the node;
//! - the node actor ([`node`]) owns the circles and the store, applies edits, seals
//!   envelopes, and hands them to the store's writer thread, which acknowledges each one once
//!   it is durable; only then does the request's answer go back (and the watch event out);
//! - [`run`] ties them together and shuts them down in order on SIGINT/SIGTERM.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod attention;
pub mod epochs;
mod keyring;
mod network;
mod node;
mod notify;
mod roster;
mod server;
mod views;

use std::{
    future::Future,
    path::{Path, PathBuf},
};

use kith_crypto::{DeviceIdentity, MemberId};
use kith_store::{Store, StoreError};
use tokio::sync::{broadcast, mpsc, watch};
use zeroize::Zeroizing;

pub use node::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    InvalidName(String),
    #[error("cannot use {path}: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the control socket path {0} is too long for a Unix socket; use a shorter --home")]
    SocketPathTooLong(PathBuf),
    #[error("cannot open the control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid listen address {0:?} (expected a multiaddr like /ip4/0.0.0.0/tcp/4242)")]
    ListenAddress(String),
    #[error("cannot start networking: {0}")]
    Network(String),
    #[error("a circle's history could not be read: {0}")]
    Load(String),
    #[error("the daemon stopped unexpectedly: {0}")]
    Internal(String),
}

/// Where a daemon listens when `--listen` is not given: every interface, TCP and QUIC, on
/// ports the system picks.
pub const DEFAULT_LISTEN: [&str; 2] = ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"];

/// What `kith daemon` was started with.
#[derive(Debug)]
pub struct DaemonConfig {
    pub home: PathBuf,
    pub passphrase: Zeroizing<Vec<u8>>,
    /// Multiaddrs to listen on; none means every interface on a port the system picks.
    pub listen: Vec<String>,
    /// Find members on the local network with mDNS.
    pub mdns: bool,
}

/// Creates this device's identity and its encrypted store in `home`; returns the member id.
pub fn init_home(home: &Path, name: &str, passphrase: &[u8]) -> Result<MemberId, DaemonError> {
    let name = validate_member_name(name)?;
    if passphrase.is_empty() {
        return Err(DaemonError::InvalidName(
            "the passphrase must not be empty".into(),
        ));
    }
    if kith_store::is_initialized(home) {
        return Err(StoreError::AlreadyInitialized(home.to_path_buf()).into());
    }
    let mut rng = rand::rng();
    let identity = DeviceIdentity::generate(&mut rng);
    kith_store::create(home, passphrase, &identity.secret(), &name, &mut rng)?;
    Ok(identity.member_id())
}

fn validate_member_name(name: &str) -> Result<String, DaemonError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DaemonError::InvalidName(
            "the name must not be empty".into(),
        ));
    }
    let chars = name.chars().count();
    if chars > kith_core::MAX_MEMBER_NAME_CHARS {
        return Err(DaemonError::InvalidName(format!(
            "the name is too long ({chars} characters, at most {})",
            kith_core::MAX_MEMBER_NAME_CHARS
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DaemonError::InvalidName(
            "the name must not contain control characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// Crypto-erase of `home`, whether or not a daemon runs there: the key file first (after that
/// nothing in the home can be decrypted), then the database, the socket and the lock.
pub fn wipe_home(home: &Path) -> Result<(), DaemonError> {
    kith_store::wipe(home)?;
    for name in [kith_ipc::SOCKET_FILE, kith_store::LOCK_FILE] {
        match std::fs::remove_file(home.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DaemonError::Home {
                    path: home.to_path_buf(),
                    source,
                });
            }
        }
    }
    // Leave the directory itself if the user keeps other files there.
    let _ = std::fs::remove_dir(home);
    Ok(())
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A signal or the shutdown future: everything flushed.
    Shutdown,
    /// `kith wipe`: the keys are destroyed.
    Wiped,
}

/// Runs the node until `shutdown` resolves (or a wipe is requested), then stops accepting
/// requests, lets every queued write become durable, closes the store and removes the socket.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Stopped, DaemonError> {
    let home = config.home.clone();
    let passphrase = config.passphrase;
    let store = tokio::task::spawn_blocking({
        let home = home.clone();
        move || Store::open(&home, &passphrase)
    })
    .await
    .map_err(|e| DaemonError::Internal(e.to_string()))??;

    let listen: Vec<kith_net::Multiaddr> = if config.listen.is_empty() {
        DEFAULT_LISTEN
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|_| DaemonError::ListenAddress((*a).to_string()))
            })
            .collect::<Result<_, _>>()?
    } else {
        config
            .listen
            .iter()
            .map(|a| a.parse().map_err(|_| DaemonError::ListenAddress(a.clone())))
            .collect::<Result<_, _>>()?
    };
    let identity = DeviceIdentity::from_secret(&store.identity_secret()?);
    let mut net_config = kith_net::NetConfig::new(identity.libp2p_keypair());
    net_config.listen = listen;
    net_config.mdns = config.mdns;
    net_config.max_join_request = kith_sync::join::MAX_JOIN_REQUEST;
    let (net, net_events) =
        kith_net::spawn(net_config).map_err(|e| DaemonError::Network(e.to_string()))?;
    let (internal_tx, internal_rx) = mpsc::channel(1024);
    let net_state = network::NetState::new(net, internal_tx);

    let (stop_tx, stop_rx) = watch::channel(None::<Stopped>);
    let (request_tx, request_rx) = mpsc::channel(256);
    let (event_tx, _) = broadcast::channel(1024);

    let node = tokio::task::block_in_place(|| {
        node::Node::load(
            store,
            home.clone(),
            config.listen,
            event_tx.clone(),
            stop_tx.clone(),
            net_state,
        )
    })?;
    // Logs carry counts, never names, ids or content: they may end up anywhere.
    tracing::info!(circles = node.circle_count(), "store unlocked");

    let listener = server::bind(&home)?;
    tracing::info!("control socket ready");

    let node_task = tokio::spawn(node::run(node, request_rx, net_events, internal_rx));
    let server_task = tokio::spawn(server::serve(
        listener,
        request_tx,
        event_tx,
        stop_rx.clone(),
    ));

    let mut stop_watch = stop_rx.clone();
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(Some(Stopped::Shutdown));
        }
        _ = async { let _ = stop_watch.wait_for(|s| s.is_some()).await; } => {}
    }
    let stopped = (*stop_rx.borrow()).unwrap_or(Stopped::Shutdown);

    // The server stops accepting and closes its request channel; the node then drains what
    // was already asked and hands back the store.
    let _ = server_task.await;
    let store = node_task
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))?;
    match stopped {
        Stopped::Shutdown => {
            tokio::task::spawn_blocking(move || store.close())
                .await
                .map_err(|e| DaemonError::Internal(e.to_string()))??;
            let _ = std::fs::remove_file(home.join(kith_ipc::SOCKET_FILE));
            tracing::info!("stopped cleanly");
        }
        Stopped::Wiped => {
            drop(store);
            wipe_home(&home)?;
            tracing::info!("keys destroyed; stopped");
        }
    }
    Ok(stopped)
}
