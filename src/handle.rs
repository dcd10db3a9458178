//! The handle table: checked ids, callback slots, ref/unref and closing.
//!
//! Every handle lives in one slot of a vector. An id is the slot's index, the slot's
//! generation at the time the handle was opened, and the id of the loop that opened it. The
//! generation is bumped when the slot is freed, so an id that outlived its handle (or a
//! readiness event queued for it) is detected instead of reaching whatever handle reuses the
//! slot; the loop id stops an id from reaching a handle of another loop that happens to sit
//! in the same slot with the same generation. Both checks run in release builds too: they
//! are two compares of values already in cache.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{closed_error, closing_error, wrong_kind_error, wrong_loop_error};
use crate::event_loop::Loop;
use crate::net::listener::ListenerState;
use crate::net::stream::StreamState;
use crate::net::udp::UdpState;

/// An untyped id of any handle of a [`Loop`]: a slot index with a generation and the id of
/// the loop that opened it.
///
/// Every typed handle ([`Timer`](crate::Timer), [`Idle`](crate::Idle), ...) converts into a
/// `Handle` with `Handle::from`, which is what [`Loop::walk`] hands out. Ids are small and
/// `Copy`, and stay harmless: a call through the id of a closed handle, or through an id on
/// a loop other than the one that opened it, returns an error of kind
/// [`InvalidInput`](io::ErrorKind::InvalidInput) ("handle is closed", "handle belongs to
/// another loop") and never touches another handle.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Handle {
    index: u32,
    gen: u32,
    owner: u32,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}v{}@{})", self.index, self.gen, self.owner)
    }
}

/// A handle's id without its loop, for the loop's own queues (the timer heap), where the
/// loop is implied: 8 bytes instead of 12, which a million timers feel.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct SlotId {
    index: u32,
    gen: u32,
}

/// Ids of loops: every handle table takes the next one, so no two loops of a process share
/// one (it would take 2^32 loops to wrap).
static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

/// What kind of handle a [`Handle`] is.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum HandleKind {
    /// A [`Timer`](crate::Timer).
    Timer,
    /// An [`Idle`](crate::Idle) watcher.
    Idle,
    /// A [`Prepare`](crate::Prepare) watcher.
    Prepare,
    /// A [`Check`](crate::Check) watcher.
    Check,
    /// A [`Waker`](crate::Waker).
    Waker,
    /// A [`Channel`](crate::Channel).
    Channel,
    /// A [`TcpListener`](crate::TcpListener).
    TcpListener,
    /// A [`TcpStream`](crate::TcpStream).
    TcpStream,
    /// A [`UnixListener`](crate::UnixListener).
    UnixListener,
    /// A [`UnixStream`](crate::UnixStream).
    UnixStream,
    /// A [`Pipe`](crate::Pipe).
    Pipe,
    /// An open [`fs::File`](crate::fs::File).
    File,
    /// An [`FdWatcher`](crate::FdWatcher).
    FdWatcher,
    /// A [`Signal`](crate::Signal) watcher.
    Signal,
    /// A child [`Process`](crate::Process).
    Process,
    /// A [`UdpSocket`](crate::UdpSocket).
    UdpSocket,
}

/// A callback stored in a handle's slot. Typed handles wrap the user's closure once, at
/// registration, so that the core can dispatch every kind the same way.
pub(crate) type Callback<S> = Box<dyn FnMut(&mut Loop<S>, Handle)>;

/// What only some kinds of handle carry.
pub(crate) enum Extra<S> {
    None,
    Timer { deadline: u64, repeat: u64 },
    Listener(Box<ListenerState<S>>),
    Stream(Box<StreamState<S>>),
    File(std::sync::Arc<crate::fs::OpenFile>),
    Fd(crate::fd::FdState),
    Process(crate::process::ProcessState),
    Udp(Box<UdpState<S>>),
}

impl<S> Extra<S> {
    pub(crate) fn stream(&self) -> Option<&StreamState<S>> {
        match self {
            Extra::Stream(st) => Some(st),
            _ => None,
        }
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut StreamState<S>> {
        match self {
            Extra::Stream(st) => Some(st),
            _ => None,
        }
    }

    pub(crate) fn listener(&self) -> Option<&ListenerState<S>> {
        match self {
            Extra::Listener(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn listener_mut(&mut self) -> Option<&mut ListenerState<S>> {
        match self {
            Extra::Listener(l) => Some(l),
            _ => None,
        }
    }
}

/// One open handle.
pub(crate) struct Body<S> {
    pub(crate) kind: HandleKind,
    pub(crate) active: bool,
    pub(crate) referenced: bool,
    pub(crate) closing: bool,
    /// Opened by the loop for its own use (a listener's back-off timer): `walk` does not show
    /// it, so a program that closes whatever it walks cannot close it under its owner.
    pub(crate) internal: bool,
    /// Start order: bumped on every start, so queue entries made by an earlier start can be
    /// told apart from the current one (lazy removal from the timer heap and watcher lists).
    pub(crate) seq: u64,
    /// `None` while the callback is being dispatched (taken out of its slot). Once the handle
    /// is closing, its callback is never called again, so the slot holds the close callback
    /// instead (one slot for both keeps a timer's slot within a cache line).
    pub(crate) callback: Option<Callback<S>>,
    pub(crate) extra: Extra<S>,
}

impl<S> Body<S> {
    /// Whether this handle keeps `RunMode::Default` running.
    pub(crate) fn keeps_alive(&self) -> bool {
        self.active && self.referenced && !self.closing
    }
}

struct Slot<S> {
    gen: u32,
    body: Option<Body<S>>,
}

/// The table of open handles.
pub(crate) struct HandleTable<S> {
    /// The id of the loop this table belongs to, carried by every handle it hands out.
    owner: u32,
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    open: usize,
    /// Handles that are active, referenced and not closing.
    alive: usize,
}

impl<S> HandleTable<S> {
    pub(crate) fn new() -> Self {
        let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
        HandleTable { owner, slots: Vec::new(), free: Vec::new(), open: 0, alive: 0 }
    }

    pub(crate) fn insert(&mut self, kind: HandleKind, callback: Callback<S>, extra: Extra<S>) -> Handle {
        let body = Body {
            kind,
            active: false,
            referenced: true,
            closing: false,
            internal: false,
            seq: 0,
            callback: Some(callback),
            extra,
        };
        self.open += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.body = Some(body);
            Handle { index, gen: slot.gen, owner: self.owner }
        } else {
            let index = self.slots.len() as u32;
            self.slots.push(Slot { gen: 0, body: Some(body) });
            Handle { index, gen: 0, owner: self.owner }
        }
    }

    /// Frees a handle's slot and bumps its generation, so its id goes stale.
    pub(crate) fn remove(&mut self, h: Handle) -> Option<Body<S>> {
        let slot = self.slot_mut(h)?;
        let body = slot.body.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(h.index);
        self.open -= 1;
        if body.keeps_alive() {
            self.alive -= 1;
        }
        Some(body)
    }

    /// The slot `h` names, if `h` is of this loop and its generation is current.
    #[inline]
    fn slot(&self, h: Handle) -> Option<&Slot<S>> {
        self.slots.get(h.index as usize).filter(|slot| slot.gen == h.gen && h.owner == self.owner)
    }

    #[inline]
    fn slot_mut(&mut self, h: Handle) -> Option<&mut Slot<S>> {
        let owner = self.owner;
        self.slots.get_mut(h.index as usize).filter(|slot| slot.gen == h.gen && h.owner == owner)
    }

    /// The body of an open handle, closing or not.
    #[inline]
    pub(crate) fn get(&self, h: Handle) -> Option<&Body<S>> {
        self.slot(h)?.body.as_ref()
    }

    /// Mutable access for changes that cannot alter `keeps_alive` (callbacks, seq, extra).
    #[inline]
    pub(crate) fn get_mut(&mut self, h: Handle) -> Option<&mut Body<S>> {
        self.slot_mut(h)?.body.as_mut()
    }

    /// Why `h` is not usable (the body, if any, is closing or of another kind than `kind`).
    #[cold]
    #[inline(never)]
    fn refusal(&self, h: Handle, kind: Option<HandleKind>) -> io::Error {
        match self.get(h) {
            _ if h.owner != self.owner => wrong_loop_error(),
            None => closed_error(),
            Some(body) if body.closing => closing_error(),
            Some(body) => {
                wrong_kind_error(format!("it is a {:?}, not a {:?}", body.kind, kind.unwrap_or(body.kind)))
            }
        }
    }

    /// Whether `body` may be used as `kind`.
    #[inline]
    fn fits(body: &Body<S>, kind: Option<HandleKind>) -> bool {
        !body.closing && kind.is_none_or(|k| k == body.kind)
    }

    /// The body of a handle that is open and not closing (and of `kind`, if given), or the
    /// error a user should see: closed, closing, another loop's, or another kind.
    #[inline]
    pub(crate) fn usable_as(&mut self, h: Handle, kind: Option<HandleKind>) -> io::Result<&mut Body<S>> {
        if !self.get(h).is_some_and(|b| Self::fits(b, kind)) {
            return Err(self.refusal(h, kind));
        }
        // Checked just above: the slot is this handle's and holds a usable body.
        self.slots[h.index as usize].body.as_mut().ok_or_else(closed_error)
    }

    /// Like `usable_as`, for reading.
    pub(crate) fn usable_ref_as(&self, h: Handle, kind: Option<HandleKind>) -> io::Result<&Body<S>> {
        match self.get(h) {
            Some(b) if Self::fits(b, kind) => Ok(b),
            _ => Err(self.refusal(h, kind)),
        }
    }

    /// Like `usable`, for reading.
    pub(crate) fn usable_ref(&self, h: Handle) -> io::Result<&Body<S>> {
        self.usable_ref_as(h, None)
    }

    /// The state of an open, usable handle of `kind`, through `project` (which picks the
    /// kind's variant of [`Extra`]): one home for "a usable handle of kind X, or the error".
    pub(crate) fn state_mut<T: ?Sized>(
        &mut self,
        h: Handle,
        kind: HandleKind,
        project: impl FnOnce(&mut Extra<S>) -> Option<&mut T>,
    ) -> io::Result<&mut T> {
        let body = self.usable_as(h, Some(kind))?;
        project(&mut body.extra).ok_or_else(|| wrong_kind_error(format!("no {kind:?} state")))
    }

    /// Like `state_mut`, for reading.
    pub(crate) fn state<T: ?Sized>(
        &self,
        h: Handle,
        kind: HandleKind,
        project: impl FnOnce(&Extra<S>) -> Option<&T>,
    ) -> io::Result<&T> {
        let body = self.usable_ref_as(h, Some(kind))?;
        project(&body.extra).ok_or_else(|| wrong_kind_error(format!("no {kind:?} state")))
    }

    /// The id of this loop's handle in slot `id`.
    pub(crate) fn handle(&self, id: SlotId) -> Handle {
        Handle { index: id.index, gen: id.gen, owner: self.owner }
    }

    /// The id of this loop's handle that a poller key was made from (see `Handle::to_key`).
    pub(crate) fn handle_for_key(&self, key: usize) -> Handle {
        let key = key as u64;
        Handle { index: key as u32, gen: (key >> 32) as u32, owner: self.owner }
    }

    /// Changes a handle's flags through `f`, keeping the count of live handles right.
    pub(crate) fn update<R>(&mut self, h: Handle, f: impl FnOnce(&mut Body<S>) -> R) -> Option<R> {
        let body = self.get_mut(h)?;
        let before = body.keeps_alive();
        let result = f(body);
        let after = body.keeps_alive();
        match (before, after) {
            (false, true) => self.alive += 1,
            (true, false) => self.alive -= 1,
            _ => {}
        }
        Some(result)
    }

    /// Number of handles that keep the loop alive.
    pub(crate) fn alive(&self) -> usize {
        self.alive
    }

    /// Number of open handles, closing ones included.
    pub(crate) fn len(&self) -> usize {
        self.open
    }

    /// Ids of every open handle, in slot order.
    pub(crate) fn ids(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.body.is_some())
            .map(|(index, slot)| Handle { index: index as u32, gen: slot.gen, owner: self.owner })
            .collect()
    }
}

impl Handle {
    /// The id without the loop (see [`SlotId`]).
    pub(crate) fn slot_id(self) -> SlotId {
        SlotId { index: self.index, gen: self.gen }
    }

    /// The slot index (stable while the handle is open; reused after).
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The id packed into a poller key. The generation rides along (on 64-bit targets) so an
    /// event can never be mistaken for one of a later handle in the same slot.
    pub(crate) fn to_key(self) -> usize {
        ((self.gen as u64) << 32 | self.index as u64) as usize
    }

    /// The kind of this handle. Fails, as any call does, if it has been closed (a closing
    /// handle still answers) or belongs to another loop.
    pub fn kind<S>(self, lp: &Loop<S>) -> io::Result<HandleKind> {
        match lp.handles.get(self) {
            Some(b) => Ok(b.kind),
            None => Err(lp.handles.usable_ref(self).err().unwrap_or_else(closed_error)),
        }
    }

    /// Whether the handle is active: a started timer or watcher, an open waker or listener,
    /// a stream with something in progress (see [`TcpStream`](crate::TcpStream)).
    /// `false` once the handle is closing or closed.
    pub fn is_active<S>(self, lp: &Loop<S>) -> bool {
        lp.handles.get(self).is_some_and(|b| b.active && !b.closing)
    }

    /// Whether the handle is closing or closed.
    pub fn is_closing<S>(self, lp: &Loop<S>) -> bool {
        lp.handles.get(self).is_none_or(|b| b.closing)
    }

    /// Whether the handle is referenced, that is, keeps the loop alive while it is active.
    /// Handles start referenced. `false` for a closed handle.
    pub fn has_ref<S>(self, lp: &Loop<S>) -> bool {
        lp.handles.get(self).is_some_and(|b| b.referenced)
    }

    /// Makes the handle keep the loop alive while it is active (the default). Idempotent.
    pub fn ref_<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.set_ref(self, None, true)
    }

    /// Lets [`RunMode::Default`](crate::RunMode::Default) return even while this handle is
    /// active. Idempotent.
    pub fn unref<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.set_ref(self, None, false)
    }

    /// Closes the handle: it stops at once, its callback (with whatever it captured) is dropped
    /// at once, and the handle is freed in the loop's closing phase.
    ///
    /// Returns an error, and changes nothing, if the handle is already closing or closed.
    pub fn close<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.close_handle(self, None, None)
    }

    /// Like [`close`](Handle::close), and calls `on_close` in the closing phase of the loop,
    /// once the handle is gone.
    pub fn close_with<S>(
        self,
        lp: &mut Loop<S>,
        on_close: impl FnOnce(&mut Loop<S>) + 'static,
    ) -> io::Result<()> {
        lp.close_handle(self, None, Some(close_callback(on_close)))
    }
}

/// Wraps a one-shot close callback for the handle's callback slot.
pub(crate) fn close_callback<S>(on_close: impl FnOnce(&mut Loop<S>) + 'static) -> Callback<S> {
    let mut on_close = Some(on_close);
    Box::new(move |lp, _| on_close.take().map_or((), |f| f(lp)))
}

/// Implements the operations every typed handle shares. They check, besides what
/// [`Handle`]'s own do, that the id is of the handle's kind.
macro_rules! common_handle_methods {
    ($ty:ident, $kind:ident) => {
        impl From<$ty> for $crate::Handle {
            fn from(h: $ty) -> $crate::Handle {
                h.handle
            }
        }

        impl $ty {
            const KIND: Option<$crate::HandleKind> = Some($crate::HandleKind::$kind);

            /// The untyped id of this handle.
            pub fn handle(&self) -> $crate::Handle {
                self.handle
            }

            /// Whether the handle is active (see [`Handle::is_active`]($crate::Handle::is_active)).
            /// `false` once it is closing or closed.
            pub fn is_active<S>(&self, lp: &$crate::Loop<S>) -> bool {
                self.handle.is_active(lp)
            }

            /// Whether the handle is closing or closed.
            pub fn is_closing<S>(&self, lp: &$crate::Loop<S>) -> bool {
                self.handle.is_closing(lp)
            }

            /// Whether the handle keeps the loop alive while active (handles start referenced).
            pub fn has_ref<S>(&self, lp: &$crate::Loop<S>) -> bool {
                self.handle.has_ref(lp)
            }

            /// Makes the handle keep the loop alive while it is active (the default).
            /// Idempotent.
            pub fn ref_<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                lp.set_ref(self.handle, Self::KIND, true)
            }

            /// Lets [`RunMode::Default`]($crate::RunMode::Default) return even while this
            /// handle is active. Idempotent.
            pub fn unref<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                lp.set_ref(self.handle, Self::KIND, false)
            }

            /// Closes the handle: it stops at once and is freed in the loop's closing phase.
            /// A second close, or any later call, returns an error and changes nothing.
            pub fn close<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                lp.close_handle(self.handle, Self::KIND, None)
            }

            /// Like `close`, and calls `on_close` in the closing phase, once the handle is gone.
            pub fn close_with<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                on_close: impl FnOnce(&mut $crate::Loop<S>) + 'static,
            ) -> std::io::Result<()> {
                lp.close_handle(self.handle, Self::KIND, Some($crate::handle::close_callback(on_close)))
            }
        }
    };
}
pub(crate) use common_handle_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_used_as_another_kind_is_refused_by_name() {
        let mut table = HandleTable::<()>::new();
        let h = table.insert(HandleKind::Timer, Box::new(|_, _| {}), Extra::None);
        let err = table.usable_as(h, Some(HandleKind::TcpStream)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "evloop: handle is of another kind: it is a Timer, not a TcpStream");
        assert!(table.usable_as(h, Some(HandleKind::Timer)).is_ok());
        assert!(table.usable_as(h, None).is_ok());
    }

    #[test]
    fn every_table_has_its_own_loop_id() {
        let (mut a, mut b) = (HandleTable::<()>::new(), HandleTable::<()>::new());
        let ha = a.insert(HandleKind::Idle, Box::new(|_, _| {}), Extra::None);
        let hb = b.insert(HandleKind::Idle, Box::new(|_, _| {}), Extra::None);
        assert_eq!((ha.index, ha.gen), (hb.index, hb.gen));
        assert_ne!(ha, hb);
        assert!(b.get(ha).is_none());
        assert_eq!(b.handle_for_key(ha.to_key()), hb);
    }
}
