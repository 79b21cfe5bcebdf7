//! The control socket between the `kith` command line and its daemon.
//!
//! A Unix socket in the node's home (mode 0600) carries length-prefixed JSON frames: a
//! 4-byte big-endian length, then one JSON document. The client sends a [`Request`]; the
//! daemon answers with one [`Response`]. A `Watch` request turns the connection into a
//! stream of [`Event`] frames until either side closes it.
//!
//! Both sides bound what they read: the daemon refuses request frames over
//! [`MAX_REQUEST_LEN`], the client refuses response frames over [`MAX_RESPONSE_LEN`].
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod client;
mod frame;
mod types;

pub use client::{Client, ClientError};
pub use frame::{FrameError, read_frame, write_frame};
pub use types::*;

/// File name of the control socket inside the node's home.
pub const SOCKET_FILE: &str = "kith.sock";

/// Largest request frame the daemon reads. Generous for the longest note plus JSON escaping.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// Largest response or event frame the client reads (an export of a big circle).
pub const MAX_RESPONSE_LEN: usize = 64 * 1024 * 1024;
