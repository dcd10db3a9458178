//! ref / unref on every kind of handle (libuv's test-ref.c) and `backend_timeout`.

use std::time::Duration;

use evloop::{Check, Handle, Idle, Loop, Prepare, RunMode, Timer, Waker};

/// Opens and starts one handle of every kind; returns their ids.
fn one_of_each(lp: &mut Loop<u32>) -> Vec<Handle> {
    let t = Timer::new(lp, |lp, _| lp.state += 1);
    t.start(lp, Duration::from_millis(1), Duration::from_millis(1)).unwrap();
    let i = Idle::new(lp, |lp, _| lp.state += 1);
    i.start(lp).unwrap();
    let p = Prepare::new(lp, |lp, _| lp.state += 1);
    p.start(lp).unwrap();
    let c = Check::new(lp, |lp, _| lp.state += 1);
    c.start(lp).unwrap();
    let w = Waker::new(lp, |lp, _| lp.state += 1);
    vec![t.handle(), i.handle(), p.handle(), c.handle(), w.handle()]
}

#[test]
fn unreferenced_handles_of_every_kind_let_default_return() {
    for which in 0..5 {
        let mut lp = Loop::with_state(0u32).unwrap();
        let handles = one_of_each(&mut lp);
        // Close every other handle; keep only `which`, unreferenced.
        for (i, h) in handles.iter().enumerate() {
            if i == which {
                h.unref(&mut lp).unwrap();
            } else {
                h.close(&mut lp).unwrap();
            }
        }
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive(), "kind #{which}");
        assert!(handles[which].is_active(&lp));
        assert!(!handles[which].has_ref(&lp));
    }
}

#[test]
fn all_unreferenced_at_once_returns_immediately() {
    let mut lp = Loop::with_state(0u32).unwrap();
    for h in one_of_each(&mut lp) {
        h.unref(&mut lp).unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 0, "nothing ran: the loop was not alive to begin with");
}

#[test]
fn ref_and_unref_are_idempotent() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    t.start(&mut lp, Duration::from_secs(100), Duration::ZERO).unwrap();
    t.unref(&mut lp).unwrap();
    t.unref(&mut lp).unwrap();
    assert!(!lp.alive());
    t.ref_(&mut lp).unwrap();
    t.ref_(&mut lp).unwrap();
    assert!(lp.alive());
    t.unref(&mut lp).unwrap();
    assert!(!lp.alive(), "two refs do not need two unrefs");
}

#[test]
fn unref_in_a_prepare_callback() {
    // libuv's unref_in_prepare_cb: a referenced active handle unrefs itself; run returns.
    let mut lp = Loop::with_state(0u32).unwrap();
    let p = Prepare::new(&mut lp, |lp, p| {
        lp.state += 1;
        p.unref(lp).unwrap();
    });
    p.start(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 1);
}

#[test]
fn an_unreferenced_timer_still_fires_while_something_else_keeps_the_loop_alive() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let unrefd = Timer::new(&mut lp, |lp, _| lp.state.push("unref'd"));
    unrefd.start(&mut lp, Duration::from_millis(5), Duration::ZERO).unwrap();
    unrefd.unref(&mut lp).unwrap();
    let keeper = Timer::new(&mut lp, |lp, _| lp.state.push("keeper"));
    keeper.start(&mut lp, Duration::from_millis(30), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["unref'd", "keeper"]);
}

#[test]
fn backend_timeout_is_zero_with_nothing_active() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.backend_timeout(), Some(Duration::ZERO));
}

#[test]
fn backend_timeout_is_the_next_timers_delay() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    t.start(&mut lp, Duration::from_secs(1), Duration::ZERO).unwrap();
    assert_eq!(lp.backend_timeout(), Some(Duration::from_secs(1)));
    // An active idle watcher means there is work now.
    let i = Idle::new(&mut lp, |_, _| {});
    i.start(&mut lp).unwrap();
    assert_eq!(lp.backend_timeout(), Some(Duration::ZERO));
    i.stop(&mut lp).unwrap();
    t.stop(&mut lp).unwrap();
    // Only a waker: wait for the fd without a limit.
    let _w = Waker::new(&mut lp, |_, _| {});
    assert_eq!(lp.backend_timeout(), None);
}
