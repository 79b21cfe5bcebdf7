//! The control socket: accepts connections, reads bounded frames, forwards requests to the
//! node, and streams events to watchers.
//!
//! A malformed request gets an error answer and the connection stays usable; a frame that
//! breaks the framing (too large, cut off) closes that connection. Neither touches the node.

use std::{os::unix::fs::PermissionsExt, path::Path, sync::Arc, time::Duration};

use kith_ipc::{
    ErrorKind, ErrorReply, Event, FrameError, MAX_REQUEST_LEN, Reply, Request, Response,
    SOCKET_FILE, read_frame, write_frame,
};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::{Semaphore, broadcast, mpsc, oneshot, watch},
    task::JoinSet,
};

use crate::{
    DaemonError, Stopped,
    node::{ItemEvent, Job},
};

/// At most this many clients at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 64;

/// Unix socket paths are limited to 108 bytes on Linux (including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Binds the socket in `home` with mode 0600. A socket file left by a killed daemon is
/// removed first: the store lock, already held, proves no other daemon uses this home.
pub(crate) fn bind(home: &Path) -> Result<UnixListener, DaemonError> {
    let path = home.join(SOCKET_FILE);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(DaemonError::SocketPathTooLong(path));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(DaemonError::Socket { path, source }),
    }
    let listener = UnixListener::bind(&path).map_err(|source| DaemonError::Socket {
        path: path.clone(),
        source,
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| DaemonError::Socket { path, source })?;
    Ok(listener)
}

/// Accepts until the stop signal, then lets open connections finish the request they are on
/// (a few seconds at most) and returns, dropping its request sender so the node can drain.
pub(crate) async fn serve(
    listener: UnixListener,
    requests: mpsc::Sender<Job>,
    events: broadcast::Sender<ItemEvent>,
    stop: watch::Receiver<Option<Stopped>>,
) {
    let mut stopping = stop.clone();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let requests = requests.clone();
                let events = events.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    serve_connection(stream, requests, events, stop).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    mut stream: UnixStream,
    requests: mpsc::Sender<Job>,
    events: broadcast::Sender<ItemEvent>,
    mut stop: watch::Receiver<Option<Stopped>>,
) {
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut stream, MAX_REQUEST_LEN) => frame,
            () = stopped(&mut stop) => return,
        };
        let body = match frame {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(FrameError::TooLarge { len, max }) => {
                tracing::warn!(len, "oversized control request refused");
                let _ = answer_error(
                    &mut stream,
                    ErrorKind::Usage,
                    format!("request of {len} bytes is larger than the limit of {max}"),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "control connection ended");
                return;
            }
        };
        let request = match serde_json::from_slice::<Request>(&body) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!("malformed control request refused");
                let message = format!("malformed request: {e}");
                if answer_error(&mut stream, ErrorKind::Usage, message)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let watching = matches!(request, Request::Watch { .. });
        // Subscribe before asking, so no event between the answer and the first recv is lost.
        let subscription = watching.then(|| events.subscribe());
        let response = ask(&requests, request).await;
        let circle = match (&response, subscription) {
            (Response::Ok(Reply::Watching { circle }), Some(sub)) => Some((circle.clone(), sub)),
            _ => None,
        };
        if send(&mut stream, &response).await.is_err() {
            return;
        }
        if let Some((circle, subscription)) = circle {
            stream_events(stream, &circle, subscription, stop).await;
            return;
        }
    }
}

/// Hands a request to the node and waits for its answer.
async fn ask(requests: &mpsc::Sender<Job>, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    if requests.send((request, tx)).await.is_err() {
        return stopping();
    }
    rx.await.unwrap_or_else(|_| stopping())
}

fn stopping() -> Response {
    Response::Error(ErrorReply {
        kind: ErrorKind::Internal,
        message: "the daemon is stopping".into(),
    })
}

async fn stream_events(
    mut stream: UnixStream,
    circle: &str,
    mut subscription: broadcast::Receiver<ItemEvent>,
    mut stop: watch::Receiver<Option<Stopped>>,
) {
    let mut probe = [0u8; 1];
    loop {
        let event = tokio::select! {
            received = subscription.recv() => match received {
                Ok(event) if event.circle.to_string() == circle => Event::Item { item: Box::new(event.item) },
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => Event::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // A watcher sends nothing; readable means it closed (or misbehaves): stop.
            _ = tokio::io::AsyncReadExt::read(&mut stream, &mut probe) => return,
            () = stopped(&mut stop) => return,
        };
        let Ok(body) = serde_json::to_vec(&event) else {
            continue;
        };
        if write_frame(&mut stream, &body).await.is_err() {
            return;
        }
    }
}

async fn answer_error(
    stream: &mut UnixStream,
    kind: ErrorKind,
    message: String,
) -> Result<(), FrameError> {
    send(stream, &Response::Error(ErrorReply { kind, message })).await
}

async fn send(stream: &mut UnixStream, response: &Response) -> Result<(), FrameError> {
    let body = serde_json::to_vec(response).map_err(|e| FrameError::Io(e.into()))?;
    write_frame(stream, &body).await
}

/// Resolves once the daemon is stopping. Returns `()` so no watch guard is held across awaits.
async fn stopped(stop: &mut watch::Receiver<Option<Stopped>>) {
    let _ = stop.wait_for(|s| s.is_some()).await;
}
