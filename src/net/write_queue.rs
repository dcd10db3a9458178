//! A stream's queue of unwritten bytes.
//!
//! `write` tries the socket at once and copies only what it could not write; what is queued
//! goes out with vectored writes when the socket is writable again.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use super::{Completion, Done};
use crate::driver::{Driver, SocketId};

/// At most this many buffers go into one vectored write.
const MAX_IOV: usize = 64;

pub(crate) struct WriteRequest<S> {
    buf: Vec<u8>,
    pos: usize,
    callback: Option<Completion<S>>,
}

pub(crate) struct WriteQueue<S> {
    requests: VecDeque<WriteRequest<S>>,
    bytes: usize,
}

impl<S> WriteQueue<S> {
    pub(crate) fn new() -> Self {
        WriteQueue { requests: VecDeque::new(), bytes: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Requests in the queue.
    pub(crate) fn len(&self) -> usize {
        self.requests.len()
    }

    /// Bytes not yet written.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn push(&mut self, buf: Vec<u8>, callback: Option<Completion<S>>) {
        self.bytes += buf.len();
        self.requests.push_back(WriteRequest { buf, pos: 0, callback });
    }

    /// Writes as much as the socket takes. Finished requests' callbacks go to `done`, with
    /// `Ok`. Returns how many requests finished; on an error the unfinished ones stay queued.
    pub(crate) fn flush(
        &mut self,
        driver: &mut Driver,
        sock: SocketId,
        done: &mut VecDeque<Done<S>>,
    ) -> io::Result<usize> {
        let mut finished = 0;
        while !self.requests.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut offered = 0;
            for req in self.requests.iter().take(MAX_IOV) {
                iov[count] = IoSlice::new(&req.buf[req.pos..]);
                offered += req.buf.len() - req.pos;
                count += 1;
            }
            let written = match driver.write_vectored(sock, &iov[..count]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            self.bytes -= written;
            finished += self.consume(written, done);
            if written < offered {
                break; // the socket's buffer is full
            }
        }
        Ok(finished)
    }

    /// Advances past `written` bytes, completing the requests they finish.
    fn consume(&mut self, mut written: usize, done: &mut VecDeque<Done<S>>) -> usize {
        let mut finished = 0;
        while let Some(req) = self.requests.front_mut() {
            let left = req.buf.len() - req.pos;
            if written < left {
                req.pos += written;
                break;
            }
            written -= left;
            if let Some(req) = self.requests.pop_front() {
                finished += 1;
                if let Some(callback) = req.callback {
                    done.push_back(Done::Completion(callback, Ok(())));
                }
            }
        }
        finished
    }

    /// Empties the queue, handing each request's callback to `f`. Returns how many requests
    /// there were.
    pub(crate) fn drain_callbacks(&mut self, mut f: impl FnMut(Completion<S>)) -> usize {
        let n = self.requests.len();
        self.bytes = 0;
        for req in self.requests.drain(..) {
            if let Some(callback) = req.callback {
                f(callback);
            }
        }
        n
    }
}
