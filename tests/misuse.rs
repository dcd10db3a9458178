//! Misuse gets an error and touches nothing else: closed handles, double close, stale ids
//! after slot reuse, closing from inside callbacks, panics in callbacks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use evloop::{Idle, Loop, RunMode, Timer, Waker};

#[test]
fn a_closed_handle_used_again_is_an_error() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    t.close(&mut lp).unwrap();
    // Closing, not yet closed.
    let closing = t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap_err();
    assert_eq!(closing.kind(), std::io::ErrorKind::InvalidInput);
    assert!(closing.to_string().contains("closing"), "{closing}");
    lp.run(RunMode::Default).unwrap();
    // Closed.
    for err in [
        t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap_err(),
        t.stop(&mut lp).unwrap_err(),
        t.again(&mut lp).unwrap_err(),
        t.due_in(&lp).unwrap_err(),
        t.unref(&mut lp).unwrap_err(),
        t.ref_(&mut lp).unwrap_err(),
        t.close(&mut lp).unwrap_err(),
    ] {
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("closed"), "{err}");
    }
    assert!(!t.is_active(&lp));
    assert!(t.is_closing(&lp));
    assert!(!t.has_ref(&lp));
    let err = t.handle().kind(&lp).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

/// Two loops hand out the same slot and generation to their first handles: only the loop id
/// tells them apart. Before handles knew their loop, every call below reached loop B's twin.
#[test]
fn a_handle_of_another_loop_is_refused_and_never_reaches_its_twin() {
    let mut a = Loop::new().unwrap();
    let mut b = Loop::with_state(Vec::new()).unwrap();
    let ta = Timer::new(&mut a, |_, _| {});
    let tb = Timer::new(&mut b, |lp, _| lp.state.push("b fired"));
    tb.start(&mut b, Duration::ZERO, Duration::ZERO).unwrap();
    assert_ne!(ta.handle(), tb.handle());
    for err in [
        ta.stop(&mut b).unwrap_err(),
        ta.start(&mut b, Duration::from_secs(3600), Duration::ZERO).unwrap_err(),
        ta.set_repeat(&mut b, Duration::from_secs(1)).unwrap_err(),
        ta.unref(&mut b).unwrap_err(),
        ta.close(&mut b).unwrap_err(),
        ta.handle().close(&mut b).unwrap_err(),
        ta.handle().kind(&b).unwrap_err(),
    ] {
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("another loop"), "{err}");
    }
    // The predicates answer as for a handle this loop does not have.
    assert!(!ta.is_active(&b));
    assert!(ta.is_closing(&b));
    // B's timer is untouched: still started, referenced, due now.
    assert!(tb.is_active(&b) && tb.has_ref(&b));
    assert!(!b.run(RunMode::Default).unwrap());
    assert_eq!(b.state, vec!["b fired"]);
    // And A's own timer works on A.
    ta.start(&mut a, Duration::ZERO, Duration::ZERO).unwrap();
    assert!(!a.run(RunMode::Default).unwrap());
}

#[test]
fn watchers_and_wakers_of_another_loop_are_refused() {
    let mut a = Loop::new().unwrap();
    let mut b = Loop::with_state(0u32).unwrap();
    let (ia, wa) = (Idle::new(&mut a, |_, _| {}), Waker::new(&mut a, |_, _| {}));
    let ib = Idle::new(&mut b, |lp, idle| {
        lp.state += 1;
        idle.stop(lp).unwrap();
    });
    let wb = Waker::new(&mut b, |_, _| {});
    ib.start(&mut b).unwrap();
    for err in [ia.stop(&mut b).unwrap_err(), ia.close(&mut b).unwrap_err(), wa.close(&mut b).unwrap_err()] {
        assert!(err.to_string().contains("another loop"), "{err}");
    }
    assert!(ib.is_active(&b), "B's idle watcher was stopped through A's id");
    assert!(wb.is_active(&b), "B's waker was closed through A's id");
    wb.unref(&mut b).unwrap();
    b.run(RunMode::Default).unwrap();
    assert_eq!(b.state, 1);
}

#[test]
fn a_double_close_is_an_error_and_the_close_callback_runs_once() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let i = Idle::new(&mut lp, |_, _| {});
    i.close_with(&mut lp, |lp| lp.state += 1).unwrap();
    assert!(i.close_with(&mut lp, |lp| lp.state += 100).is_err());
    lp.run(RunMode::Default).unwrap();
    assert!(i.close(&mut lp).is_err());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 1);
}

/// Slot index, generation and loop id of a handle, read from its `Debug` form
/// `Handle(INDEXvGEN@LOOP)`.
fn slot_of(h: evloop::Handle) -> (u32, u32, u32) {
    let text = format!("{h:?}");
    let inner = text.strip_prefix("Handle(").and_then(|t| t.strip_suffix(')')).expect(&text);
    let (index, rest) = inner.split_once('v').expect(&text);
    let (gen, owner) = rest.split_once('@').expect(&text);
    (index.parse().expect(&text), gen.parse().expect(&text), owner.parse().expect(&text))
}

#[test]
fn a_stale_id_never_reaches_the_handle_that_reuses_its_slot() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let old = Timer::new(&mut lp, |lp, _| lp.state.push("old"));
    old.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    let new = Timer::new(&mut lp, |lp, _| lp.state.push("new"));
    // The new handle sits in the old one's slot, one generation on: otherwise this test
    // would only show that ids of different slots differ.
    let (old_slot, old_gen, old_loop) = slot_of(old.handle());
    let (new_slot, new_gen, new_loop) = slot_of(new.handle());
    assert_eq!((new_slot, new_loop), (old_slot, old_loop), "{:?} vs {:?}", old.handle(), new.handle());
    assert_eq!(new_gen, old_gen.wrapping_add(1), "{:?} vs {:?}", old.handle(), new.handle());
    assert_ne!(old.handle(), new.handle());
    assert!(old.start(&mut lp, Duration::ZERO, Duration::ZERO).is_err());
    assert!(old.close(&mut lp).is_err());
    assert!(!new.is_active(&lp));
    assert!(!new.is_closing(&lp));
    new.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["new"]);
}

#[test]
fn a_callback_that_closes_its_own_handle() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let t = Timer::new(&mut lp, |lp, t| {
        lp.state.push("fire");
        t.close_with(lp, |lp| lp.state.push("closed")).unwrap();
        // Using it again inside the same callback is an error, not a crash.
        assert!(t.start(lp, Duration::ZERO, Duration::ZERO).is_err());
    });
    t.start(&mut lp, Duration::ZERO, Duration::from_millis(1)).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, vec!["fire", "closed"]);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn close_drops_the_callback_at_once_and_a_due_timer_never_fires() {
    let token = std::rc::Rc::new(());
    let held = token.clone();
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let t = Timer::new(&mut lp, move |lp, _| {
        let _ = &held;
        lp.state.push(0);
    });
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    assert_eq!(std::rc::Rc::strong_count(&token), 2);
    let probe = token.clone();
    t.close_with(&mut lp, move |lp| lp.state.push(std::rc::Rc::strong_count(&probe))).unwrap();
    // The timer's closure is gone: `token` and `probe` remain.
    assert_eq!(std::rc::Rc::strong_count(&token), 2);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, vec![2]);
    assert_eq!(std::rc::Rc::strong_count(&token), 1);
}

#[test]
fn a_close_callback_may_open_and_close_handles() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    t.close_with(&mut lp, |lp| {
        lp.state.push("first closed");
        let next = Timer::new(lp, |lp, t| {
            lp.state.push("next fired");
            t.close_with(lp, |lp| lp.state.push("next closed")).unwrap();
        });
        next.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, vec!["first closed", "next fired", "next closed"]);
}

#[test]
fn a_panic_in_a_callback_propagates_and_the_loop_stays_usable() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let bomb = Timer::new(&mut lp, |_, _| panic!("boom"));
    let steady = Timer::new(&mut lp, |lp, t| {
        lp.state.push("steady");
        if lp.state.len() == 3 {
            t.close(lp).unwrap();
        }
    });
    let waker = Waker::new(&mut lp, |lp, w| {
        lp.state.push("woken");
        w.close(lp).unwrap();
    });
    bomb.start(&mut lp, Duration::ZERO, Duration::from_millis(1)).unwrap();
    steady.start(&mut lp, Duration::from_millis(5), Duration::from_millis(5)).unwrap();
    waker.wake().unwrap();

    let panic = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom"));

    // The handle whose callback panicked is closed; nothing else changed.
    assert!(bomb.is_closing(&lp));
    assert!(bomb.start(&mut lp, Duration::ZERO, Duration::ZERO).is_err());
    assert!(steady.is_active(&lp));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state.iter().filter(|s| **s == "steady").count(), 2);
    assert_eq!(lp.state.iter().filter(|s| **s == "woken").count(), 1);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn a_panic_in_a_close_callback_loses_nothing_else() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let a = Timer::new(&mut lp, |_, _| {});
    let b = Timer::new(&mut lp, |_, _| {});
    a.close_with(&mut lp, |_| panic!("close boom")).unwrap();
    b.close_with(&mut lp, |lp| lp.state += 1).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).is_err());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 1);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn an_absurd_event_capacity_is_clamped_not_a_panic() {
    let mut backends = vec![evloop::Backend::Polling];
    #[cfg(target_os = "linux")]
    backends.push(evloop::Backend::Epoll);
    for backend in backends {
        for capacity in [usize::MAX, 0] {
            let mut lp = Loop::builder().event_capacity(capacity).backend(backend).build().unwrap();
            let t = Timer::new(&mut lp, |lp, t| t.close(lp).unwrap());
            t.start(&mut lp, Duration::from_millis(1), Duration::ZERO).unwrap();
            assert!(!lp.run(RunMode::Default).unwrap(), "{backend:?}, capacity {capacity}");
        }
    }
}

/// The same refusal on the simulated driver: the check lives in the handle table, which
/// both drivers share, and must hold for simulated loops side by side too.
#[test]
fn a_handle_of_another_simulated_loop_is_refused() {
    use evloop::sim::Sim;
    let mut a = Sim::new(1, ());
    let mut b = Sim::new(1, Vec::new());
    let ta = Timer::new(&mut a, |_, _| {});
    let tb = Timer::new(&mut b, |lp, _| lp.state.push("b fired"));
    tb.start(&mut b, Duration::from_secs(5), Duration::ZERO).unwrap();
    let err = ta.stop(&mut b).unwrap_err();
    assert!(err.to_string().contains("another loop"), "{err}");
    assert!(ta.close(&mut b).is_err());
    b.run().unwrap();
    assert_eq!(b.state, vec!["b fired"]);
    assert_eq!(b.elapsed(), Duration::from_secs(5));
}

/// `run` from a callback of a simulated loop is the same misuse.
#[test]
fn run_from_inside_a_simulated_callback_is_invalid_input() {
    use evloop::sim::Sim;
    let mut sim = Sim::new(2, None);
    let t = Timer::new(&mut sim, |lp, _| lp.state = Some(lp.run(RunMode::NoWait).unwrap_err().kind()));
    t.start(&mut sim, Duration::ZERO, Duration::ZERO).unwrap();
    sim.run().unwrap();
    assert_eq!(sim.state, Some(std::io::ErrorKind::InvalidInput));
}
