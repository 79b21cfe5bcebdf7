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

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix);
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            FrameTooLarge {
                len: u64::from(len),
                max,
            },
        )
    };
    let len = usize::try_from(len).map_err(|_| too_large())?;
    if len > max {
        return Err(too_large());
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
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
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max_response).await
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
