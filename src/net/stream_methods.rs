//! The public methods every stream type shares, written once: `stream_methods!` gives them
//! to [`TcpStream`](crate::TcpStream), [`UnixStream`](crate::UnixStream) and
//! [`Pipe`](crate::Pipe), each method
//! delegating to one `Loop` operation below, keyed by [`Handle`] and the kind the type names
//! (so an id of another kind of stream is refused, never served). The typed handle reaches
//! the user's callbacks through a wrapper made once, at registration.

use std::io;

use super::stream::{ReadCallback, Shutdown};
use super::Completion;
use crate::driver::SocketId;
use crate::error::copy_error;
use crate::event_loop::Loop;
use crate::handle::{Handle, HandleKind};

/// Implements the stream methods for `$ty`, whose handles are of kind `HandleKind::$kind`.
/// The type must have a `handle: Handle` field.
macro_rules! stream_methods {
    ($ty:ident, $kind:ident) => {
        impl $ty {
            const STREAM_KIND: $crate::HandleKind = $crate::HandleKind::$kind;

            pub(crate) fn from_handle(handle: $crate::Handle) -> $ty {
                $ty { handle }
            }

            /// Starts reading: `on_read` gets each chunk as it arrives, then `Ok(&[])` once at
            /// the end of the stream, or an error (a reset peer gives `ConnectionReset`).
            /// Reading stops by itself after the end or an error. Calling it again replaces
            /// the callback.
            pub fn read_start<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                mut on_read: impl FnMut(&mut $crate::Loop<S>, $ty, std::io::Result<&[u8]>) + 'static,
            ) -> std::io::Result<()> {
                let on_read = Box::new(move |lp: &mut $crate::Loop<S>, h, data: std::io::Result<&[u8]>| {
                    on_read(lp, $ty::from_handle(h), data)
                });
                lp.stream_read_start(self.handle, Self::STREAM_KIND, on_read)
            }

            /// Stops reading. The kernel keeps buffering what arrives, up to its window,
            /// which is how a reader applies backpressure to its peer.
            /// [`read_resume`](Self::read_resume) starts again with the same callback. If a
            /// write fails while reading is stopped, the error is delivered to the read
            /// callback.
            pub fn read_stop<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                lp.stream_read_stop(self.handle, Self::STREAM_KIND)
            }

            /// Starts reading again with the callback given to the last
            /// [`read_start`](Self::read_start), keeping whatever state it holds (Node's
            /// `resume()`); the usual partner of `read_stop` for backpressure. Does nothing if
            /// the stream is reading; an error if no read callback was ever set or the stream
            /// has reached its end.
            pub fn read_resume<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                lp.stream_read_resume(self.handle, Self::STREAM_KIND)
            }

            /// Whether the stream is reading.
            pub fn is_reading<S>(&self, lp: &$crate::Loop<S>) -> bool {
                lp.stream_ref(self.handle, Self::STREAM_KIND).is_ok_and(|st| st.reading)
            }

            /// Writes `data`: what the socket takes now is sent at once, the rest is copied
            /// into the write queue and sent in order as the socket drains. Returns `Ok(true)`
            /// while the queue is below the high-water mark, `Ok(false)` once it has reached
            /// it (Node's `write` returning false): stop producing until the
            /// [`on_drain`](Self::on_drain) callback.
            ///
            /// Returns an error if the stream is closed or shut down, or if the connection
            /// has failed (a reset peer): then nothing was sent or queued. A failure found
            /// later, while queued data goes out, is reported to the callbacks of the queued
            /// writes (see [`write_with`](Self::write_with)); later writes return it.
            pub fn write<S>(&self, lp: &mut $crate::Loop<S>, data: &[u8]) -> std::io::Result<bool> {
                lp.stream_write(self.handle, Self::STREAM_KIND, data, None)
            }

            /// Like [`write`](Self::write), and calls `on_written` from the loop once all of
            /// `data` has been handed to the kernel, or with the error that stopped it.
            /// Callbacks run in submission order and never inside this call. If the stream is
            /// closed first, the callback gets a [`Cancelled`](crate::Cancelled) error. If
            /// this call returns an error, the callback is dropped without being called.
            pub fn write_with<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                data: &[u8],
                on_written: impl FnOnce(&mut $crate::Loop<S>, std::io::Result<()>) + 'static,
            ) -> std::io::Result<bool> {
                lp.stream_write(self.handle, Self::STREAM_KIND, data, Some(Box::new(on_written)))
            }

            /// Writes what the socket takes now and queues nothing (libuv's `uv_try_write`).
            /// Returns the number of bytes written, or `WouldBlock` if the socket is full or
            /// writes are already queued (which must go first).
            pub fn try_write<S>(&self, lp: &mut $crate::Loop<S>, data: &[u8]) -> std::io::Result<usize> {
                lp.stream_try_write(self.handle, Self::STREAM_KIND, data)
            }

            /// Bytes queued and not yet handed to the kernel.
            pub fn write_queue_size<S>(&self, lp: &$crate::Loop<S>) -> std::io::Result<usize> {
                Ok(lp.stream_ref(self.handle, Self::STREAM_KIND)?.queue.bytes())
            }

            /// Sets the write queue's high-water mark (default 64 KiB), see
            /// [`write`](Self::write).
            pub fn set_high_water_mark<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                bytes: usize,
            ) -> std::io::Result<()> {
                lp.stream_usable(self.handle, Self::STREAM_KIND)?.high_water_mark =
                    u32::try_from(bytes).unwrap_or(u32::MAX);
                Ok(())
            }

            /// Sets the callback that runs when the write queue has emptied after a
            /// [`write`](Self::write) returned `false` (Node's `'drain'` event).
            pub fn on_drain<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                mut on_drain: impl FnMut(&mut $crate::Loop<S>, $ty) + 'static,
            ) -> std::io::Result<()> {
                let on_drain = Box::new(move |lp: &mut $crate::Loop<S>, h| on_drain(lp, $ty::from_handle(h)));
                lp.stream_usable(self.handle, Self::STREAM_KIND)?.drain_callback = Some(on_drain);
                Ok(())
            }

            /// Sends FIN once every queued write has gone (half-close); the stream can still
            /// read. `on_shutdown` runs from the loop with the outcome. Writes after this are
            /// an error.
            pub fn shutdown<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                on_shutdown: impl FnOnce(&mut $crate::Loop<S>, std::io::Result<()>) + 'static,
            ) -> std::io::Result<()> {
                lp.stream_shutdown(self.handle, Self::STREAM_KIND, Box::new(on_shutdown))
            }
        }
    };
}
pub(crate) use stream_methods;

impl<S> Loop<S> {
    pub(crate) fn stream_read_start(
        &mut self,
        h: Handle,
        kind: HandleKind,
        on_read: ReadCallback<S>,
    ) -> io::Result<()> {
        let st = self.stream_usable(h, kind)?;
        st.check_direction(false)?;
        st.read_callback = Some(on_read);
        st.reader_installed = true;
        if !st.reading {
            self.start_reading(h);
        }
        Ok(())
    }

    pub(crate) fn stream_read_stop(&mut self, h: Handle, kind: HandleKind) -> io::Result<()> {
        let st = self.stream_usable(h, kind)?;
        if st.reading {
            st.reading = false;
            self.mark_interest(h);
        }
        Ok(())
    }

    pub(crate) fn stream_read_resume(&mut self, h: Handle, kind: HandleKind) -> io::Result<()> {
        let st = self.stream_usable(h, kind)?;
        if !st.reader_installed {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: read_resume before read_start"));
        }
        if st.read_ended {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "evloop: the stream has ended"));
        }
        if !st.reading {
            self.start_reading(h);
        }
        Ok(())
    }

    pub(crate) fn stream_try_write(&mut self, h: Handle, kind: HandleKind, data: &[u8]) -> io::Result<usize> {
        let st = self.stream_usable(h, kind)?;
        st.check_direction(true)?;
        if let Some(e) = st.write_error() {
            return Err(copy_error(e));
        }
        if st.connecting() || !st.queue.is_empty() || st.shut() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let sock = st.sock;
        self.driver.write(sock, data)
    }

    pub(crate) fn stream_shutdown(
        &mut self,
        h: Handle,
        kind: HandleKind,
        on_shutdown: Completion<S>,
    ) -> io::Result<()> {
        let st = self.stream_usable(h, kind)?;
        st.check_direction(true)?;
        if st.shut() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: shutdown already requested"));
        }
        st.cold().shutdown = Shutdown::Requested(on_shutdown);
        let ready = !st.connecting() && st.queue.is_empty();
        self.net.requests += 1;
        if ready {
            self.send_shutdown(h);
        }
        Ok(())
    }

    /// The socket of a stream of `kind`, for type-specific calls (addresses, options).
    pub(crate) fn stream_socket(&self, h: Handle, kind: HandleKind) -> io::Result<SocketId> {
        Ok(self.stream_ref(h, kind)?.sock)
    }
}
