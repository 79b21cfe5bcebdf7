//! The client side of the control socket, used by the command line and the tests.

use std::path::Path;

use tokio::net::UnixStream;

use crate::{
    ErrorReply, Event, FrameError, MAX_RESPONSE_LEN, Reply, Request, Response, SOCKET_FILE,
    read_frame, write_frame,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the kith daemon is not running (start it with `kith daemon`)")]
    NotRunning,
    #[error("{}", .0.message)]
    Remote(ErrorReply),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One connection to a daemon's control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the daemon of `home`. A missing socket or a refused connection (a stale
    /// socket left by a killed daemon) both mean the daemon is not running.
    pub async fn connect(home: &Path) -> Result<Client, ClientError> {
        let path = home.join(SOCKET_FILE);
        match UnixStream::connect(&path).await {
            Ok(stream) => Ok(Client { stream }),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(ClientError::NotRunning)
            }
            Err(e) => Err(ClientError::Frame(FrameError::Io(e))),
        }
    }

    /// Sends one request and waits for its answer.
    pub async fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        write_frame(&mut self.stream, &body).await?;
        let frame = read_frame(&mut self.stream, MAX_RESPONSE_LEN)
            .await?
            .ok_or(ClientError::Closed)?;
        match serde_json::from_slice::<Response>(&frame) {
            Ok(Response::Ok(reply)) => Ok(reply),
            Ok(Response::Error(error)) => Err(ClientError::Remote(error)),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// Sends raw bytes as one frame and reads the answer; for tests of malformed requests.
    pub async fn request_raw(&mut self, body: &[u8]) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, body).await?;
        let frame = read_frame(&mut self.stream, MAX_RESPONSE_LEN)
            .await?
            .ok_or(ClientError::Closed)?;
        serde_json::from_slice::<Response>(&frame).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The next event on a watching connection; `None` when the daemon closed it.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        let Some(frame) = read_frame(&mut self.stream, MAX_RESPONSE_LEN).await? else {
            return Ok(None);
        };
        serde_json::from_slice::<Event>(&frame)
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
