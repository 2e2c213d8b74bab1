//! Read-ahead: large socket reads under bulk traffic, no buffer while idle.
//!
//! Sits between the TCP socket and what reads it (tungstenite for WS,
//! rustls for WSS). Both ask for at most 4 KiB per read: tungstenite
//! because the driver gives it a small `read_buffer_size` (a big one is held,
//! and zeroed, by every idle connection), rustls by design. Under bulk
//! traffic that is one system call per 4 KiB, which cost more than the rest
//! of a 64 KiB message's handling.
//!
//! So: a read goes straight into the caller's buffer, as if this type were
//! not there, until one fills that buffer completely (the socket had at
//! least as much as was asked for, so likely more). Then a buffer of
//! [`CHUNK`] bytes is allocated, filled with one read, and handed out in the
//! pieces asked for. It is freed as soon as the socket has nothing more to
//! give (a read would wait), so a connection that is waiting for data holds
//! no buffer here. Writes pass straight through.

use smol::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The size of one bulk read.
pub const CHUNK: usize = 64 * 1024;

/// A byte stream with read-ahead. See the module documentation.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Allocated only while reads fill what is asked for (bulk traffic).
    buffer: Option<Box<[u8]>>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The last read filled the caller's request: read ahead next time.
    bulk: bool,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            buffer: None,
            start: 0,
            end: 0,
            bulk: false,
        }
    }

    #[cfg(test)]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The bytes held for reading ahead right now: 0 while idle.
    #[cfg(test)]
    pub fn buffered_capacity(&self) -> usize {
        self.buffer.as_ref().map_or(0, |b| b.len())
    }

    /// Hands out what the buffer holds.
    fn take_into(&mut self, out: &mut [u8]) -> usize {
        let buffer = self.buffer.as_deref().unwrap_or_default();
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&buffer[self.start..self.start + n]);
        self.start += n;
        n
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.start < this.end {
            return Poll::Ready(Ok(this.take_into(out)));
        }
        if !this.bulk {
            let n = ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            this.bulk = n == out.len();
            return Poll::Ready(Ok(n));
        }
        let buffer = this
            .buffer
            .get_or_insert_with(|| vec![0; CHUNK].into_boxed_slice());
        match Pin::new(&mut this.inner).poll_read(cx, buffer) {
            Poll::Ready(Ok(n)) => {
                (this.start, this.end) = (0, n);
                // Read ahead again only while the socket keeps giving more
                // than is asked for; otherwise the copy buys nothing.
                this.bulk = n > out.len();
                let taken = this.take_into(out);
                if !this.bulk && this.start == this.end {
                    this.buffer = None;
                }
                Poll::Ready(Ok(taken))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Caught up: nothing is held while waiting.
                this.buffer = None;
                this.bulk = false;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use std::collections::VecDeque;

    /// A socket stand-in: hands out what `arrived` holds, a read at most per
    /// arrival (as a socket returns what has come in), then would wait.
    #[derive(Default)]
    struct Arrivals {
        arrived: VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl AsyncRead for Arrivals {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let Some(front) = this.arrived.front_mut() else {
                return Poll::Pending;
            };
            this.reads += 1;
            let n = out.len().min(front.len());
            out[..n].copy_from_slice(&front[..n]);
            front.drain(..n);
            if front.is_empty() {
                this.arrived.pop_front();
            }
            Poll::Ready(Ok(n))
        }
    }

    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|k| (k * 31 + seed) as u8).collect()
    }

    /// Reads `len` bytes in requests of `ask`, as tungstenite and rustls do.
    fn read_in_pieces(stream: &mut ReadAhead<Arrivals>, len: usize, ask: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut piece = vec![0; ask];
        while got.len() < len {
            let n = smol::block_on(stream.read(&mut piece)).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&piece[..n]);
        }
        got
    }

    /// Polls a read once: None when it would wait.
    fn read_now(stream: &mut ReadAhead<Arrivals>) -> Option<usize> {
        let mut piece = [0; 4096];
        smol::future::block_on(smol::future::poll_once(stream.read(&mut piece))).map(|r| r.unwrap())
    }

    #[test]
    fn bulk_data_is_read_a_chunk_at_a_time_and_handed_out_intact() {
        let data = pattern(1_000_000, 1);
        let mut stream = ReadAhead::new(Arrivals {
            arrived: [data.clone()].into(),
            ..Arrivals::default()
        });
        let got = read_in_pieces(&mut stream, data.len(), 4096);
        assert!(got == data, "intact and in order");
        // One 4 KiB read to notice the bulk, then chunks: not 245 reads.
        let chunks = (data.len() - 4096).div_ceil(CHUNK);
        assert_eq!(stream.get_ref().reads, 1 + chunks);
    }

    #[test]
    fn the_buffer_is_released_as_soon_as_the_socket_has_nothing_more() {
        let data = pattern(3 * CHUNK, 2);
        let mut stream = ReadAhead::new(Arrivals {
            arrived: [data.clone()].into(),
            ..Arrivals::default()
        });
        assert_eq!(stream.buffered_capacity(), 0, "nothing before bulk");
        let got = read_in_pieces(&mut stream, 2 * CHUNK, 4096);
        assert_eq!(stream.buffered_capacity(), CHUNK, "reading ahead");
        let rest = read_in_pieces(&mut stream, data.len() - got.len(), 4096);
        assert!([got, rest].concat() == data);
        assert_eq!(read_now(&mut stream), None, "caught up: would wait");
        assert_eq!(stream.buffered_capacity(), 0, "released while waiting");
    }

    #[test]
    fn a_trickle_is_read_straight_into_the_callers_buffer() {
        let messages: Vec<Vec<u8>> = (0..50).map(|i| pattern(1 + i * 80, i)).collect();
        let mut stream = ReadAhead::new(Arrivals::default());
        for message in &messages {
            stream.inner.arrived.push_back(message.clone());
            let got = read_in_pieces(&mut stream, message.len(), 4096);
            assert!(&got == message);
            assert_eq!(stream.buffered_capacity(), 0, "no buffer for a trickle");
            assert_eq!(read_now(&mut stream), None);
        }
        assert_eq!(stream.get_ref().reads, messages.len(), "one read each");
    }

    #[test]
    fn a_read_ahead_that_brings_little_goes_back_to_direct_reads() {
        let mut stream = ReadAhead::new(Arrivals {
            arrived: [pattern(4096, 3), pattern(100, 4), pattern(4096, 5)].into(),
            ..Arrivals::default()
        });
        assert_eq!(read_now(&mut stream), Some(4096));
        assert_eq!(read_now(&mut stream), Some(100), "read ahead, got little");
        assert_eq!(stream.buffered_capacity(), 0, "released at once");
        assert_eq!(read_now(&mut stream), Some(4096), "direct again");
        assert_eq!(stream.buffered_capacity(), 0);
    }

    #[test]
    fn over_a_real_socket_bulk_and_trickle_arrive_intact() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = smol::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                // Bulk, then a trickle paced by the reader's replies.
                socket.write_all(&pattern(2_000_000, 6)).await.unwrap();
                let mut ack = [0u8; 1];
                for i in 0..20 {
                    socket.write_all(&pattern(10 + i * 300, i)).await.unwrap();
                    socket.read_exact(&mut ack).await.unwrap();
                }
            });
            let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
            let mut stream = ReadAhead::new(tcp);
            let mut got = vec![0; 2_000_000];
            let mut piece = vec![0; 4096];
            let mut filled = 0;
            while filled < got.len() {
                let ask = piece.len().min(got.len() - filled);
                let n = stream.read(&mut piece[..ask]).await.unwrap();
                assert!(n > 0);
                got[filled..filled + n].copy_from_slice(&piece[..n]);
                filled += n;
            }
            assert!(got == pattern(2_000_000, 6));
            for i in 0..20 {
                let mut message = vec![0; 10 + i * 300];
                stream.read_exact(&mut message).await.unwrap();
                assert!(message == pattern(10 + i * 300, i), "trickle {i}");
                stream.write_all(b"k").await.unwrap();
            }
            writer.await;
        });
    }
}
