//! The handle table: generation-checked ids, callback slots, ref/unref and closing.
//!
//! Every handle lives in one slot of a vector. An id is the slot's index plus the slot's
//! generation at the time the handle was opened; the generation is bumped when the slot is
//! freed, so an id that outlived its handle (or a readiness event queued for it) is detected
//! instead of reaching whatever handle reuses the slot.

use std::fmt;
use std::io;

use crate::error::{closed_error, closing_error};
use crate::event_loop::Loop;
use crate::net::listener::ListenerState;
use crate::net::stream::StreamState;

/// An untyped id of any handle of a [`Loop`]: a slot index with a generation.
///
/// Every typed handle ([`Timer`](crate::Timer), [`Idle`](crate::Idle), ...) converts into a
/// `Handle` with `Handle::from`, which is what [`Loop::walk`] hands out. Ids are small and
/// `Copy`; an id whose handle was closed stays harmless: every call through it returns an
/// error and never touches another handle.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Handle {
    index: u32,
    gen: u32,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}v{})", self.index, self.gen)
    }
}

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
    /// A [`TcpListener`](crate::TcpListener).
    TcpListener,
    /// A [`TcpStream`](crate::TcpStream).
    TcpStream,
    /// An open [`fs::File`](crate::fs::File).
    File,
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
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    open: usize,
    /// Handles that are active, referenced and not closing.
    alive: usize,
}

impl<S> HandleTable<S> {
    pub(crate) fn new() -> Self {
        HandleTable { slots: Vec::new(), free: Vec::new(), open: 0, alive: 0 }
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
            Handle { index, gen: slot.gen }
        } else {
            let index = self.slots.len() as u32;
            self.slots.push(Slot { gen: 0, body: Some(body) });
            Handle { index, gen: 0 }
        }
    }

    /// Frees a handle's slot and bumps its generation, so its id goes stale.
    pub(crate) fn remove(&mut self, h: Handle) -> Option<Body<S>> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        let body = slot.body.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(h.index);
        self.open -= 1;
        if body.keeps_alive() {
            self.alive -= 1;
        }
        Some(body)
    }

    /// The body of an open handle, closing or not.
    pub(crate) fn get(&self, h: Handle) -> Option<&Body<S>> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.body.as_ref()
    }

    /// Mutable access for changes that cannot alter `keeps_alive` (callbacks, seq, extra).
    pub(crate) fn get_mut(&mut self, h: Handle) -> Option<&mut Body<S>> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.body.as_mut()
    }

    /// The body of a handle that is open and not closing, or the error a user should see.
    pub(crate) fn usable(&mut self, h: Handle) -> io::Result<&mut Body<S>> {
        match self.get_mut(h) {
            None => Err(closed_error()),
            Some(body) if body.closing => Err(closing_error()),
            Some(body) => Ok(body),
        }
    }

    /// Like `usable`, for reading.
    pub(crate) fn usable_ref(&self, h: Handle) -> io::Result<&Body<S>> {
        match self.get(h) {
            None => Err(closed_error()),
            Some(body) if body.closing => Err(closing_error()),
            Some(body) => Ok(body),
        }
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
            .map(|(index, slot)| Handle { index: index as u32, gen: slot.gen })
            .collect()
    }
}

impl Handle {
    /// The slot index (stable while the handle is open; reused after).
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The id packed into a poller key. The generation rides along (on 64-bit targets) so an
    /// event can never be mistaken for one of a later handle in the same slot.
    pub(crate) fn to_key(self) -> usize {
        ((self.gen as u64) << 32 | self.index as u64) as usize
    }

    /// The id a poller key was made from.
    pub(crate) fn from_key(key: usize) -> Handle {
        let key = key as u64;
        Handle { index: key as u32, gen: (key >> 32) as u32 }
    }

    /// The kind of this handle, or `None` if it has been closed.
    pub fn kind<S>(self, lp: &Loop<S>) -> Option<HandleKind> {
        lp.handles.get(self).map(|b| b.kind)
    }

    /// Whether the handle is active: a started timer or watcher, an open waker.
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
        lp.set_ref(self, true)
    }

    /// Lets [`RunMode::Default`](crate::RunMode::Default) return even while this handle is
    /// active. Idempotent.
    pub fn unref<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.set_ref(self, false)
    }

    /// Closes the handle: it stops at once, its callback (with whatever it captured) is dropped
    /// at once, and the handle is freed in the loop's closing phase.
    ///
    /// Returns an error, and changes nothing, if the handle is already closing or closed.
    pub fn close<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.close_handle(self, None)
    }

    /// Like [`close`](Handle::close), and calls `on_close` in the closing phase of the loop,
    /// once the handle is gone.
    pub fn close_with<S>(
        self,
        lp: &mut Loop<S>,
        on_close: impl FnOnce(&mut Loop<S>) + 'static,
    ) -> io::Result<()> {
        let mut on_close = Some(on_close);
        lp.close_handle(self, Some(Box::new(move |lp, _| on_close.take().map_or((), |f| f(lp)))))
    }
}

/// Implements the operations every typed handle shares by delegating to [`Handle`].
macro_rules! common_handle_methods {
    ($ty:ident) => {
        impl From<$ty> for $crate::Handle {
            fn from(h: $ty) -> $crate::Handle {
                h.handle
            }
        }

        impl $ty {
            /// The untyped id of this handle.
            pub fn handle(&self) -> $crate::Handle {
                self.handle
            }

            /// Whether the handle is active (started, for timers and watchers). `false` once it
            /// is closing or closed.
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
                self.handle.ref_(lp)
            }

            /// Lets [`RunMode::Default`]($crate::RunMode::Default) return even while this
            /// handle is active. Idempotent.
            pub fn unref<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                self.handle.unref(lp)
            }

            /// Closes the handle: it stops at once and is freed in the loop's closing phase.
            /// A second close, or any later call, returns an error and changes nothing.
            pub fn close<S>(&self, lp: &mut $crate::Loop<S>) -> std::io::Result<()> {
                self.handle.close(lp)
            }

            /// Like `close`, and calls `on_close` in the closing phase, once the handle is gone.
            pub fn close_with<S>(
                &self,
                lp: &mut $crate::Loop<S>,
                on_close: impl FnOnce(&mut $crate::Loop<S>) + 'static,
            ) -> std::io::Result<()> {
                self.handle.close_with(lp, on_close)
            }
        }
    };
}
pub(crate) use common_handle_methods;
