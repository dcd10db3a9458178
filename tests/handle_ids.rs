//! Stale ids of every kind without sockets (timers, watchers, wakers, files), and ref/unref
//! of files, on both drivers: the same body runs on a real `Loop` and on a `Sim` (the
//! socket kinds are in `tests/conformance/`).

use std::io::{self, ErrorKind};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use evloop::fs::{File, OpenOptions};
use evloop::sim::Sim;
use evloop::{Check, Handle, Idle, Loop, Prepare, RunMode, Timer, Waker};

type Log = Vec<String>;

/// A loop to run a body on, and how to run it until nothing is left.
trait Drive: DerefMut<Target = Loop<Log>> {
    fn settle(&mut self);
}

/// A real loop, and an unreferenced watchdog that bounds `settle` (opened once, so that
/// settling opens no handle of its own).
struct Real(Loop<Log>, Timer);

impl Deref for Real {
    type Target = Loop<Log>;
    fn deref(&self) -> &Loop<Log> {
        &self.0
    }
}

impl DerefMut for Real {
    fn deref_mut(&mut self) -> &mut Loop<Log> {
        &mut self.0
    }
}

impl Drive for Real {
    fn settle(&mut self) {
        // Bounded: every body here only waits for pool work on a local file.
        self.1.start(&mut self.0, Duration::from_secs(10), Duration::ZERO).unwrap();
        assert!(!self.0.run(RunMode::Default).unwrap());
        self.1.stop(&mut self.0).unwrap();
    }
}

impl Drive for Sim<Log> {
    fn settle(&mut self) {
        self.run().unwrap();
    }
}

fn real() -> Real {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let watchdog = Timer::new(&mut lp, |_, _| panic!("real: not settled within 10 s"));
    watchdog.unref(&mut lp).unwrap();
    Real(lp, watchdog)
}

fn sim() -> Sim<Log> {
    Sim::new(0x5EED, Vec::new())
}

fn assert_closed<T: std::fmt::Debug>(what: &str, r: io::Result<T>) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    assert!(e.to_string().contains("closed"), "{what}: {e}");
}

/// The slot index of a handle, from its `Debug` form (`Handle(3v1@2)`).
fn slot_of(h: impl Into<Handle>) -> String {
    let d = format!("{:?}", h.into());
    d.trim_start_matches("Handle(").split('v').next().unwrap().to_string()
}

/// What every handle kind shares, through the untyped id.
fn assert_handle_closed<D: Drive>(lp: &mut D, h: Handle) {
    assert_closed("kind", h.kind(lp));
    assert_closed("Handle::ref_", h.ref_(lp));
    assert_closed("Handle::unref", h.unref(lp));
    assert_closed("Handle::close", h.close(lp));
    assert_closed("Handle::close_with", h.close_with(lp, |_| panic!("never")));
    assert!(!h.is_active(lp) && h.is_closing(lp) && !h.has_ref(lp));
}

macro_rules! typed_common {
    ($lp:expr, $h:expr) => {{
        assert_closed("ref_", $h.ref_($lp));
        assert_closed("unref", $h.unref($lp));
        assert_closed("close", $h.close($lp));
        assert_closed("close_with", $h.close_with($lp, |_| panic!("never")));
        assert!(!$h.is_active($lp) && $h.is_closing($lp) && !$h.has_ref($lp));
        assert_handle_closed($lp, $h.handle());
    }};
}

/// The callback of a request that must be refused: never called.
fn never<T>(what: &'static str) -> impl FnOnce(&mut Loop<Log>, io::Result<T>) {
    move |_, _| panic!("{what}: a refused request has no callback")
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("evloop-handle-ids-{}-{name}", std::process::id()))
}

fn open_file<D: Drive>(lp: &mut D, path: &PathBuf) -> File {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    let opened = std::rc::Rc::new(std::cell::Cell::new(None));
    let slot = opened.clone();
    File::open(lp, path, &options, move |_, f| slot.set(Some(f.unwrap()))).unwrap();
    lp.settle();
    opened.get().expect("the file opened")
}

/// Timers, idle, prepare and check watchers, wakers and files: after close and the close
/// phase, every method refuses the stale id with InvalidInput "closed", and new handles
/// that reuse the slots are untouched and work.
fn stale_ids_of_every_kind<D: Drive>(mut lp: D, name: &str) {
    let path = temp_file(name);
    let lp = &mut lp;
    // The file first: opening it runs the loop, which an open waker would keep alive.
    let f = open_file(lp, &path);
    let t = Timer::new(lp, |_, _| panic!("the old timer never fires"));
    let i = Idle::new(lp, |_, _| panic!("the old idle never runs"));
    let p = Prepare::new(lp, |_, _| panic!("the old prepare never runs"));
    let c = Check::new(lp, |_, _| panic!("the old check never runs"));
    let w = Waker::new(lp, |_, _| panic!("the old waker never runs"));
    let old: Vec<Handle> = vec![t.into(), i.into(), p.into(), c.into(), w.clone().into(), f.into()];
    for h in &old {
        h.close(lp).unwrap();
    }
    lp.settle();
    assert!(old.iter().all(|h| h.kind(lp).is_err()), "freed");

    // New handles in the freed slots (opened in the same order: the table hands out the
    // freed slots again).
    let f2 = open_file(lp, &path);
    let t2 = Timer::new(lp, |lp, t| {
        lp.state.push("timer".into());
        t.close(lp).unwrap();
    });
    let i2 = Idle::new(lp, |lp, h| {
        lp.state.push("idle".into());
        h.close(lp).unwrap();
    });
    let p2 = Prepare::new(lp, |lp, h| {
        lp.state.push("prepare".into());
        h.close(lp).unwrap();
    });
    let c2 = Check::new(lp, |lp, h| {
        lp.state.push("check".into());
        h.close(lp).unwrap();
    });
    let w2 = Waker::new(lp, |lp, h| {
        lp.state.push("waker".into());
        h.close(lp).unwrap();
    });
    let new: Vec<Handle> = vec![t2.into(), i2.into(), p2.into(), c2.into(), w2.clone().into(), f2.into()];
    let mut old_slots: Vec<String> = old.iter().map(|&h| slot_of(h)).collect();
    let mut new_slots: Vec<String> = new.iter().map(|&h| slot_of(h)).collect();
    old_slots.sort();
    new_slots.sort();
    assert_eq!(old_slots, new_slots, "the new handles reuse the freed slots");
    t2.start(lp, Duration::from_millis(5), Duration::ZERO).unwrap();
    i2.start(lp).unwrap();
    p2.start(lp).unwrap();
    c2.start(lp).unwrap();
    let before: Vec<(bool, bool, bool)> =
        new.iter().map(|h| (h.is_active(lp), h.has_ref(lp), h.is_closing(lp))).collect();
    let due = t2.due_in(lp).unwrap();

    // Timer.
    assert_closed("timer start", t.start(lp, Duration::ZERO, Duration::ZERO));
    assert_closed("timer stop", t.stop(lp));
    assert_closed("timer again", t.again(lp));
    assert_closed("timer set_repeat", t.set_repeat(lp, Duration::from_millis(1)));
    assert_closed("timer repeat", t.repeat(lp));
    assert_closed("timer due_in", t.due_in(lp));
    typed_common!(lp, t);
    // Watchers.
    assert_closed("idle start", i.start(lp));
    assert_closed("idle stop", i.stop(lp));
    typed_common!(lp, i);
    assert_closed("prepare start", p.start(lp));
    assert_closed("prepare stop", p.stop(lp));
    typed_common!(lp, p);
    assert_closed("check start", c.start(lp));
    assert_closed("check stop", c.stop(lp));
    typed_common!(lp, c);
    // Waker (`wake` is checked on its own below).
    typed_common!(lp, w);
    // File.
    assert_closed("file read_at", f.read_at(lp, 0, 1, never("read_at")));
    assert_closed("file write_at", f.write_at(lp, 0, b"x", never("write_at")));
    assert_closed("file read", f.read(lp, 1, never("read")));
    assert_closed("file write", f.write(lp, b"x", never("write")));
    assert_closed("file sync_all", f.sync_all(lp, never("sync_all")));
    assert_closed("file sync_data", f.sync_data(lp, never("sync_data")));
    assert_closed("file set_len", f.set_len(lp, 0, never("set_len")));
    assert_closed("file metadata", f.metadata(lp, never("metadata")));
    typed_common!(lp, f);

    // The new handles are untouched...
    let after: Vec<(bool, bool, bool)> =
        new.iter().map(|h| (h.is_active(lp), h.has_ref(lp), h.is_closing(lp))).collect();
    assert_eq!(after, before);
    assert_eq!(t2.due_in(lp).unwrap(), due);
    // ... and work: the file holds what the new handle writes, not the stale one.
    f2.write_at(lp, 0, b"new", |lp, r| lp.state.push(format!("wrote {}", r.unwrap()))).unwrap();
    w2.wake().unwrap();
    lp.settle();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let mut log = lp.state.clone();
    log.sort();
    assert_eq!(log, vec!["check", "idle", "prepare", "timer", "waker", "wrote 3"]);
    f2.close(lp).unwrap();
    lp.settle();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn stale_ids_of_every_kind_real() {
    stale_ids_of_every_kind(real(), "real");
}

#[test]
fn stale_ids_of_every_kind_sim() {
    stale_ids_of_every_kind(sim(), "sim");
}

/// The crate docs' error rule: "the id of a closed or closing handle" is InvalidInput.
/// `Waker::wake` through a closed waker follows it (it used to answer NotConnected).
fn wake_of_a_closed_waker_is_invalid_input<D: Drive>(mut lp: D) {
    let w = Waker::new(&mut *lp, |_, _| {});
    w.close(&mut *lp).unwrap();
    lp.settle();
    assert_closed("wake", w.wake());
}

#[test]
fn wake_of_a_closed_waker_is_invalid_input_real() {
    wake_of_a_closed_waker_is_invalid_input(real());
}

#[test]
fn wake_of_a_closed_waker_is_invalid_input_sim() {
    wake_of_a_closed_waker_is_invalid_input(sim());
}

/// ref/unref on a file. An open file is never active ("an open file keeps nothing alive by
/// itself; its requests do"), referenced or not; ref/unref still work on it and are
/// idempotent. Its requests are pool requests, which keep the loop alive whatever the
/// file's reference (as libuv's fs requests do).
fn file_ref_and_unref<D: Drive>(mut lp: D, name: &str) {
    let path = temp_file(name);
    let lp = &mut lp;
    let f = open_file(lp, &path);
    assert!(f.has_ref(lp) && !f.is_active(lp), "open, referenced, inactive");
    assert!(!lp.alive(), "an open file alone keeps nothing alive");
    f.unref(lp).unwrap();
    f.unref(lp).unwrap();
    assert!(!f.has_ref(lp) && !lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap(), "run returns at once");
    f.write_at(lp, 0, b"data", |lp, r| lp.state.push(format!("unref'd: {}", r.unwrap()))).unwrap();
    assert!(lp.alive(), "its request keeps the loop alive, unreferenced file or not");
    lp.settle();
    assert_eq!(lp.state, vec!["unref'd: 4"]);
    f.ref_(lp).unwrap();
    f.ref_(lp).unwrap();
    assert!(f.has_ref(lp) && !f.is_active(lp));
    assert!(!lp.alive(), "referenced again, still nothing to wait for");
    assert!(!lp.run(RunMode::Default).unwrap());
    f.close(lp).unwrap();
    lp.settle();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn file_ref_and_unref_real() {
    file_ref_and_unref(real(), "ref-real");
}

#[test]
fn file_ref_and_unref_sim() {
    file_ref_and_unref(sim(), "ref-sim");
}
