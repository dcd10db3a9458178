//! The read side of streams: draining a readable socket into the read callback, and the
//! bookkeeping an edge-triggered poller needs when a pass stops before the socket is empty.

use std::io;

use super::stream::ReadCallback;
use super::READ_BUF_SIZE;
use crate::driver::Readiness;
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle};

/// Reads per stream per wakeup, so that one busy connection cannot starve the others.
const MAX_READS_PER_WAKEUP: usize = 32;

impl<S> Loop<S> {
    pub(super) fn start_reading(&mut self, h: Handle) {
        let Some(st) = self.stream_state(h) else { return };
        st.reading = true;
        if std::mem::take(&mut st.maybe_unread) {
            self.net.again.push(Readiness::again(h.to_key()));
        }
        self.mark_interest(h);
    }

    /// Reads what the socket holds, up to a cap. After a hang-up a short read is not the end:
    /// the end of the stream itself is still to be read.
    pub(super) fn read_ready(&mut self, h: Handle, hangup: bool) {
        let mut buf = std::mem::take(&mut self.net.read_buf);
        if buf.is_empty() {
            // A read callback panicked while it held the buffer.
            buf = vec![0; READ_BUF_SIZE];
        }
        let mut drained = false;
        for _ in 0..MAX_READS_PER_WAKEUP {
            let Some(st) = self.stream_state(h) else {
                drained = true;
                break;
            };
            st.maybe_unread = false;
            if !st.reading {
                break;
            }
            let sock = st.sock;
            match self.driver.read(sock, &mut buf) {
                Ok(0) => {
                    self.stop_reading(h);
                    self.call_read(h, Ok(&[]));
                    drained = true;
                    break;
                }
                Ok(n) => {
                    self.call_read(h, Ok(&buf[..n]));
                    // A short read emptied the socket: stream sockets never return less
                    // than they hold, and later input raises a new edge.
                    if n < buf.len() && !hangup {
                        drained = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    self.stop_reading(h);
                    self.call_read(h, Err(e));
                    drained = true;
                    break;
                }
            }
        }
        self.net.read_buf = buf;
        if !drained {
            if let Some(st) = self.stream_state(h) {
                if st.reading {
                    // The cap was reached: come back after the others, as if polled again.
                    self.net.again.push(Readiness::again(h.to_key()));
                } else {
                    st.maybe_unread = true;
                }
            }
        }
    }

    pub(super) fn stop_reading(&mut self, h: Handle) {
        if let Some(st) = self.stream_state(h) {
            st.reading = false;
            st.read_ended = true;
            self.mark_interest(h);
        }
    }

    /// Calls the read callback, taken out of its slot for the call.
    pub(super) fn call_read(&mut self, h: Handle, result: io::Result<&[u8]>) {
        self.call_slot(h, read_slot, |lp, cb| cb(lp, h, result));
    }

    /// Reports a failure to the read callback, as a read would have.
    pub(crate) fn call_read_error(&mut self, h: Handle, e: io::Error) {
        self.call_read(h, Err(e));
    }
}

fn read_slot<S>(extra: &mut Extra<S>) -> Option<&mut Option<ReadCallback<S>>> {
    match extra {
        Extra::Stream(st) => Some(&mut st.read_callback),
        _ => None,
    }
}
