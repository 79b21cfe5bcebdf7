//! The wire format of `/kith/sync/1` and `/kith/join/1`: one length-prefixed frame per
//! request and one per response.
//!
//! A frame is a 4-byte big-endian length followed by that many opaque bytes. The reader
//! checks the length against its limit *before* allocating, so a peer cannot make us reserve
//! more than the limit, whatever prefix it sends.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
#[error("frame of {len} bytes exceeds the limit of {max} bytes")]
pub struct FrameTooLarge {
    /// Length announced (reading) or given (writing).
    pub len: u64,
    /// The limit in force.
    pub max: usize,
}

/// A request as read from the wire: its bytes, or only the length a peer announced over the
/// limit (the body is left unread). Reading an oversized request "successfully" lets it
/// reach the actor with the sender's peer id, so the offence can be counted against it;
/// libp2p drops a failed read without saying who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestFrame {
    /// A frame within the limit.
    Bytes(Vec<u8>),
    /// A frame announced longer than the limit.
    TooLarge {
        /// The announced length.
        len: u64,
    },
}

/// A response as written: bytes, or a reset of the stream. An oversized request is answered
/// with a reset: its sender is still writing a body we will not read, and only a reset
/// (not a clean close) tells it to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResponseFrame {
    /// A frame within the limit.
    Bytes(Vec<u8>),
    /// Fail the stream instead of answering.
    Reset,
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    match read_request_frame(io, max).await? {
        RequestFrame::Bytes(bytes) => Ok(bytes),
        RequestFrame::TooLarge { len } => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameTooLarge { len, max },
        )),
    }
}

/// Reads one frame, or only the length prefix of one over `max` bytes.
pub(crate) async fn read_request_frame<T>(io: &mut T, max: usize) -> io::Result<RequestFrame>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let announced = u32::from_be_bytes(prefix);
    let len = match usize::try_from(announced) {
        Ok(len) if len <= max => len,
        _ => {
            return Ok(RequestFrame::TooLarge {
                len: u64::from(announced),
            });
        }
    };
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(RequestFrame::Bytes(buf))
}

/// Writes one frame; refuses (without writing anything) when `bytes` exceeds `max`.
pub(crate) async fn write_frame<T>(io: &mut T, bytes: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameTooLarge {
                len: bytes.len() as u64,
                max,
            },
        )
    };
    if bytes.len() > max {
        return Err(too_large());
    }
    let len = u32::try_from(bytes.len()).map_err(|_| too_large())?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

/// Request-response codec carrying opaque bytes in length-prefixed frames.
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    /// Largest request we read or write.
    pub(crate) max_request: usize,
    /// Largest response we read or write.
    pub(crate) max_response: usize,
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = RequestFrame;
    type Response = ResponseFrame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_request_frame(io, self.max_request).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ResponseFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response)
            .await
            .map(ResponseFrame::Bytes)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RequestFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            RequestFrame::Bytes(bytes) => write_frame(io, &bytes, self.max_request).await,
            RequestFrame::TooLarge { len } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                FrameTooLarge {
                    len,
                    max: self.max_request,
                },
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: ResponseFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            ResponseFrame::Bytes(bytes) => write_frame(io, &bytes, self.max_response).await,
            // An error here makes libp2p drop the stream unclosed, which resets it.
            ResponseFrame::Reset => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request over the limit",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn round_trip() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, b"hello", 16)).unwrap();
        assert_eq!(wire.get_ref().len(), 9);
        wire.set_position(0);
        assert_eq!(block_on(read_frame(&mut wire, 16)).unwrap(), b"hello");
    }

    #[test]
    fn empty_frame() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, b"", 16)).unwrap();
        wire.set_position(0);
        assert!(block_on(read_frame(&mut wire, 16)).unwrap().is_empty());
    }

    #[test]
    fn oversized_write_writes_nothing() {
        let mut wire = Cursor::new(Vec::new());
        let err = block_on(write_frame(&mut wire, &[0u8; 17], 16)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.get_ref().is_empty());
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        // A prefix announcing 4 GiB with no body: must fail on the check, not on allocation
        // or on the short read.
        let mut wire = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let err = block_on(read_frame(&mut wire, 2 * 1024 * 1024)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.get_ref().unwrap().is::<FrameTooLarge>());
    }

    #[test]
    fn an_oversized_request_is_read_as_its_length_only() {
        let mut bytes = 17u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1u8; 17]);
        let mut wire = Cursor::new(bytes);
        assert_eq!(
            block_on(read_request_frame(&mut wire, 16)).unwrap(),
            RequestFrame::TooLarge { len: 17 }
        );
        // The body was not read.
        assert_eq!(wire.position(), 4);
        let mut wire = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert_eq!(
            block_on(read_request_frame(&mut wire, 16)).unwrap(),
            RequestFrame::TooLarge {
                len: u64::from(u32::MAX)
            }
        );
    }

    #[test]
    fn truncated_frames_are_errors() {
        for bytes in [vec![], vec![0, 0], vec![0, 0, 0, 5, b'a', b'b']] {
            let mut wire = Cursor::new(bytes);
            let err = block_on(read_frame(&mut wire, 16)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn limit_is_inclusive() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, &[7u8; 16], 16)).unwrap();
        wire.set_position(0);
        assert_eq!(block_on(read_frame(&mut wire, 16)).unwrap(), vec![7u8; 16]);
    }
}
