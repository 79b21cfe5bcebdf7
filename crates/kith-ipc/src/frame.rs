//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame of at most `max` bytes. `Ok(None)` means the peer closed cleanly between
/// frames. The length is checked before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len_bytes = [0u8; 4];
    let mut filled = 0;
    while filled < len_bytes.len() {
        let Some(rest) = len_bytes.get_mut(filled..) else {
            return Err(FrameError::Truncated);
        };
        let n = reader.read(rest).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    match reader.read_exact(&mut body).await {
        Ok(_) => Ok(Some(body)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        let mut reader = buf.as_slice();
        assert_eq!(
            read_frame(&mut reader, 16).await.unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), Some(vec![]));
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), None);

        let mut reader = buf.as_slice();
        assert!(matches!(
            read_frame(&mut reader, 4).await,
            Err(FrameError::TooLarge { len: 5, max: 4 })
        ));
        for cut in 1..buf.len().min(8) {
            let mut reader = buf.get(..cut).unwrap();
            assert!(matches!(
                read_frame(&mut reader, 16).await,
                Err(FrameError::Truncated)
            ));
        }
    }

    #[tokio::test]
    async fn huge_length_prefix_allocates_nothing() {
        let bytes = [0xff, 0xff, 0xff, 0xff];
        let mut reader = &bytes[..];
        assert!(matches!(
            read_frame(&mut reader, 1024).await,
            Err(FrameError::TooLarge { .. })
        ));
    }
}
