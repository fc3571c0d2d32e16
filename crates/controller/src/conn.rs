//! The HTTP server's connections: a body permit that lasts until its answer is on the wire,
//! and a deadline on writing answers, so a client that never reads cannot keep either.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// Output a client leaves unread this long fails the connection: hyper then drops it, with
/// the answer and its permit. A deadline on all pending output, not on each write: a client
/// reading a little now and then would pass a per-write timeout while holding a permit.
pub const ANSWER_WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Each connection's kernel send buffer (Linux doubles it for bookkeeping). Left to itself
/// it grows to several MiB on loopback or a fast link: a whole unread answer would sit there,
/// out of the permit's sight, and under cgroup v2 it is charged to the controller's memory
/// limit all the same. 256 KiB still sends a 2 MB answer in a few round trips.
pub const SEND_BUFFER_BYTES: usize = 256 * 1024;

/// Accepts TCP connections whose writes obey a deadline.
pub struct DeadlineListener {
    inner: TcpListener,
    write_deadline: Duration,
}

impl DeadlineListener {
    pub fn new(inner: TcpListener, write_deadline: Duration) -> DeadlineListener {
        DeadlineListener {
            inner,
            write_deadline,
        }
    }
}

impl Listener for DeadlineListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        // axum's own accept: it retries and backs off on errors such as too many open files.
        let (io, addr) = Listener::accept(&mut self.inner).await;
        if let Err(e) = socket2::SockRef::from(&io).set_send_buffer_size(SEND_BUFFER_BYTES) {
            // The connection still works; only its answers may sit in the kernel unseen.
            tracing::warn!(error = %e, "cannot size a connection's send buffer");
        }
        let connection = Connection {
            io,
            write_deadline: self.write_deadline,
            stuck: None,
            answers: SentAnswers::default(),
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Permits of answers whose body hyper has taken in full but may still hold in its write
/// buffer. Freed when the connection has written everything, or with the connection.
#[derive(Clone, Default)]
pub struct SentAnswers(Arc<Mutex<Vec<OwnedSemaphorePermit>>>);

impl SentAnswers {
    fn release(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Each request learns its connection's [`SentAnswers`] (axum's `ConnectInfo`).
impl Connected<IncomingStream<'_, DeadlineListener>> for SentAnswers {
    fn connect_info(stream: IncomingStream<'_, DeadlineListener>) -> SentAnswers {
        stream.io().answers.clone()
    }
}

/// A body permit owned by an answer's body: dropped with the body, it passes to the answer's
/// connection until that has written the answer out.
///
/// hyper drops a body once it has taken its last bytes, which then still wait in its write
/// buffer (an unread 2 MB answer stays there whole): the body's end is not the answer's send.
pub struct AnswerPermit {
    permit: Option<OwnedSemaphorePermit>,
    connection: Weak<Mutex<Vec<OwnedSemaphorePermit>>>,
}

impl AnswerPermit {
    /// `connection` is `None` for a request that came without a socket (the router driven
    /// directly): the permit then ends with the body.
    pub fn new(permit: OwnedSemaphorePermit, connection: Option<&SentAnswers>) -> AnswerPermit {
        AnswerPermit {
            permit: Some(permit),
            connection: connection.map_or_else(Weak::new, |c| Arc::downgrade(&c.0)),
        }
    }
}

impl Drop for AnswerPermit {
    fn drop(&mut self) {
        // A connection already gone has nothing left to write: the permit just ends.
        if let (Some(permit), Some(sent)) = (self.permit.take(), self.connection.upgrade()) {
            sent.lock().unwrap_or_else(|e| e.into_inner()).push(permit);
        }
    }
}

/// A TCP connection that fails writes once output has been pending past its deadline.
pub struct Connection {
    io: TcpStream,
    write_deadline: Duration,
    /// Armed when a write first finds the socket full; disarmed when all output is written.
    stuck: Option<Pin<Box<Sleep>>>,
    answers: SentAnswers,
}

impl Connection {
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            return write;
        }
        let deadline = self.write_deadline;
        let stuck = self
            .stuck
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        match stuck.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "answer not read by the client within {} s",
                    deadline.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let write = Pin::new(&mut this.io).poll_write(cx, buf);
        this.deadline(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let write = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.deadline(cx, write)
    }

    /// Without it hyper would copy each answer into one flat buffer instead of queueing it.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            // hyper flushes the socket only once its write buffer is empty: every answer whose
            // body it took has been handed to the kernel.
            this.stuck = None;
            this.answers.release();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
