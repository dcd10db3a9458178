//! The write side of streams: a write tried at once and queued only for what the socket did
//! not take, flushing the queue as the socket drains, the high-water mark's drain
//! notification, the shutdown that follows the last queued byte, and failing every queued
//! request when a write fails.

use std::io;

use super::stream::{DrainCallback, StreamState};
use super::{Completion, Done};
use crate::error::copy_error;
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle, HandleKind};

fn drain_slot<S>(extra: &mut Extra<S>) -> Option<&mut Option<DrainCallback<S>>> {
    match extra {
        Extra::Stream(st) => Some(&mut st.drain_callback),
        _ => None,
    }
}

impl<S> Loop<S> {
    pub(crate) fn stream_write(
        &mut self,
        h: Handle,
        kind: HandleKind,
        data: &[u8],
        callback: Option<Completion<S>>,
    ) -> io::Result<bool> {
        let st = self.stream_usable(h, kind)?;
        st.check_direction(true)?;
        if let Some(e) = st.write_error() {
            return Err(copy_error(e));
        }
        if st.shut() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "evloop: write after shutdown"));
        }
        let sock = st.sock;
        let mut written = 0;
        if st.queue.is_empty() && !st.connecting() {
            match self.driver.write(sock, data) {
                Ok(n) => written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    // The data was neither sent nor queued: the call fails, and its callback
                    // is dropped uncalled (a callback runs only for an accepted write).
                    drop(callback);
                    self.fail_writes(h, copy_error(&e), None);
                    return Err(e);
                }
            }
        }
        if written == data.len() {
            if let Some(callback) = callback {
                self.push_done(h, Done::Completion(callback, Ok(())));
            }
            return Ok(true);
        }
        let Some(st) = self.stream_state(h) else { return Ok(false) };
        let was_empty = st.queue.is_empty();
        st.queue.push(data[written..].to_vec(), callback);
        let below = st.queue.bytes() < st.high_water_mark as usize;
        if !below {
            st.drain_owed = true;
        }
        self.net.requests += 1;
        if was_empty {
            self.mark_interest(h);
        }
        Ok(below)
    }

    /// A write failed: that write and every queued one get the error; later writes return it.
    pub(super) fn fail_writes(&mut self, h: Handle, e: io::Error, current: Option<Completion<S>>) {
        log::debug!("{h:?}: write failed: {e}");
        let Some(st) = self.stream_state(h) else { return };
        let mut failed = Vec::new();
        let n = st.queue.drain_callbacks(|cb| failed.push(cb));
        failed.extend(current);
        let shutdown = st.take_shutdown();
        // A reader that paused would otherwise never hear of it: nothing reads, and the
        // drain it waits for cannot come.
        let reader_hears = !st.reading && !st.read_ended && st.reader_installed;
        if reader_hears {
            st.read_ended = true;
        }
        let cold = st.cold();
        for cb in failed {
            cold.done.push_back(Done::Completion(cb, Err(copy_error(&e))));
        }
        let had_shutdown = shutdown.is_some();
        if let Some(cb) = shutdown {
            cold.done.push_back(Done::Completion(cb, Err(copy_error(&e))));
        }
        if reader_hears {
            cold.done.push_back(Done::ReadError(copy_error(&e)));
        }
        cold.write_error = Some(e);
        if had_shutdown {
            self.net.requests -= 1;
        }
        self.net.requests -= n;
        self.mark_interest(h);
        self.schedule_pending(h);
    }

    /// Sends FIN now that nothing is queued.
    pub(super) fn send_shutdown(&mut self, h: Handle) {
        let Some(st) = self.stream_state(h) else { return };
        let Some(callback) = st.take_shutdown() else { return };
        let sock = st.sock;
        let result = self.driver.shutdown_write(sock);
        self.net.requests -= 1;
        self.push_done(h, Done::Completion(callback, result));
    }

    pub(super) fn flush_writes(&mut self, h: Handle) {
        let Some(Extra::Stream(st)) = self.handles.get_mut(h).map(|b| &mut b.extra) else { return };
        let sock = st.sock;
        let StreamState { queue, cold, .. } = &mut **st;
        let done = &mut cold.get_or_insert_with(Default::default).done;
        let result = queue.flush(&mut self.driver, sock, done);
        match result {
            Ok(finished) => {
                self.net.requests -= finished;
                let Some(st) = self.stream_state(h) else { return };
                if st.queue.is_empty() {
                    if std::mem::take(&mut st.drain_owed) {
                        st.cold().done.push_back(Done::Drain);
                    }
                    self.mark_interest(h);
                    self.send_shutdown(h);
                }
                self.schedule_pending(h);
            }
            Err(e) => self.fail_writes(h, e, None),
        }
    }

    pub(crate) fn call_drain(&mut self, h: Handle) {
        self.call_slot(h, drain_slot, |lp, cb| cb(lp, h));
    }
}
