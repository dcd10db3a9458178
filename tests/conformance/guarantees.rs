//! Bodies: the guarantees of the crate docs (issue #11), on both drivers.

use super::*;

// ---------------------------------------------------------------------------------------
// Guarantees of the crate docs (issue #11), on both drivers.
// ---------------------------------------------------------------------------------------

/// Runs the loop until a callback panics; returns the panic's message.
pub(super) fn settle_until_panic<N: Net<St>>(net: &mut N, what: &str) -> String {
    let payload = catch_unwind(AssertUnwindSafe(|| net.settle_until(what, |_| false)))
        .expect_err("the callback's panic propagates out of run");
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a non-string panic".into(),
    }
}

/// A started timer that should be left alone by whatever happens to other handles.
pub(super) fn bystander<N: Net<St>>(net: &mut N) -> Timer {
    let t = Timer::new(net.lp(), |lp, _| lp.state.log.push("bystander fired".into()));
    t.start(net.lp(), Duration::from_secs(3600), Duration::ZERO).unwrap();
    t
}

pub(super) fn assert_bystander_untouched<N: Net<St>>(net: &mut N, t: Timer) {
    let lp = net.lp();
    assert!(t.is_active(lp) && t.has_ref(lp) && !t.is_closing(lp), "the other handle is untouched");
    assert!(t.due_in(lp).unwrap() > Duration::from_secs(3000), "still due in about an hour");
    assert!(!lp.state.log.iter().any(|l| l == "bystander fired"));
}

/// The loop's cached time does not move inside a long callback; `update_time` refreshes it,
/// and a timer started after the refresh counts from the refreshed time (one started before
/// counts from the stale one, so it is due at once).
pub(super) fn stale_time_in_a_long_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let burn = net.burner();
    let lp = net.lp();
    let long = Timer::new(lp, move |lp, t| {
        let stale = lp.now();
        burn(ms(20));
        assert_eq!(lp.now(), stale, "the cached time does not move inside a callback");
        let early = Timer::new(lp, move |lp, t| {
            lp.state.log.push(format!("early fired, {} ms after the stale time", lp.now() - stale));
            t.close(lp).unwrap();
        });
        early.start(lp, ms(10), Duration::ZERO).unwrap();
        lp.update_time();
        let fresh = lp.now();
        assert!(fresh >= stale + 20, "update_time refreshes: {stale} -> {fresh}");
        let late = Timer::new(lp, move |lp, t| {
            assert!(lp.now() >= fresh + 10, "counts from the refreshed time: {} < {fresh} + 10", lp.now());
            lp.state.log.push("late fired".into());
            t.close(lp).unwrap();
        });
        late.start(lp, ms(10), Duration::ZERO).unwrap();
        assert_eq!(late.due_in(lp).unwrap(), ms(10), "due 10 ms after the refreshed time");
        assert_eq!(early.due_in(lp).unwrap(), Duration::ZERO, "counted from the stale time: due already");
        lp.state.log.push(format!("refreshed by at least 20: {}", fresh >= stale + 20));
        t.close(lp).unwrap();
    });
    long.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
    net.settle_until("both timers", |lp| lp.state.log.len() == 3);
    let log = net.lp().state.log.clone();
    assert_eq!(log[0], "refreshed by at least 20: true");
    let after: u64 = log[1]
        .strip_prefix("early fired, ")
        .and_then(|r| r.strip_suffix(" ms after the stale time"))
        .unwrap_or_else(|| panic!("early fires first: {log:?}"))
        .parse()
        .unwrap();
    assert!(after >= 20, "early fires once the loop has the time again: {after}");
    assert_eq!(log[2], "late fired");
    net.finish();
}

/// Checks the closed handle refuses a call with InvalidInput "closed".
pub(super) fn assert_closed<T: std::fmt::Debug>(what: &str, r: io::Result<T>) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    assert!(e.to_string().contains("closed"), "{what}: {e}");
}

/// The slot index of a handle, from its `Debug` form (`Handle(3v1@2)`).
pub(super) fn slot_of(h: Handle) -> String {
    let d = format!("{h:?}");
    d.trim_start_matches("Handle(").split('v').next().unwrap().to_string()
}

/// A panic in a timer callback: the timer is closed, the rest is untouched, the loop goes on.
pub(super) fn panic_in_a_timer_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let other = bystander(&mut net);
    let bomb = Timer::new(net.lp(), |_, _| panic!("timer boom"));
    bomb.start(net.lp(), ms(5), ms(5)).unwrap();
    assert_eq!(settle_until_panic(&mut net, "the timer panics"), "timer boom");
    assert!(bomb.is_closing(net.lp()) && !bomb.is_active(net.lp()), "the panicking timer is closed");
    let e = bomb.start(net.lp(), Duration::ZERO, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_bystander_untouched(&mut net, other);
    let next = Timer::new(net.lp(), |lp, t| {
        lp.state.log.push("next".into());
        t.close(lp).unwrap();
    });
    next.start(net.lp(), ms(5), Duration::ZERO).unwrap();
    net.settle_until("a later timer", |lp| !lp.state.log.is_empty());
    assert_eq!(net.lp().state.log, vec!["next"]);
    net.finish();
}

/// A panic in a read callback: that stream is closed (its peer sees the end), the listener
/// and the other stream go on reading, a later run carries on.
pub(super) fn panic_in_a_read_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        lp.state.streams.push(s);
        if lp.state.streams.len() == 1 {
            s.read_start(lp, |_, _, _| panic!("read boom")).unwrap();
        } else {
            s.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
        }
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let mut bomb_peer = net.connect(addr).unwrap();
    let bomb = accepted(&mut net, 1);
    let mut calm_peer = net.connect(addr).unwrap();
    let calm = accepted(&mut net, 2);
    let other = bystander(&mut net);
    bomb_peer.send(b"x");
    assert_eq!(settle_until_panic(&mut net, "the read callback panics"), "read boom");
    let lp = net.lp();
    assert!(bomb.is_closing(lp) && !bomb.is_reading(lp), "the panicking stream is closed");
    assert!(calm.is_reading(lp) && !calm.is_closing(lp), "the other stream still reads");
    assert!(listener.is_active(lp) && !listener.is_closing(lp), "the listener is untouched");
    assert_bystander_untouched(&mut net, other);
    net.settle_until("the closed stream's peer sees the end", |_| bomb_peer.end().is_some());
    assert_eq!(bomb_peer.end(), Some(End::Eof), "nothing was left unread: a graceful close");
    calm_peer.send(b"still here");
    let mut third = net.connect(addr).unwrap();
    third.send(b"new");
    let bytes = |lp: &Loop<St>| -> usize {
        lp.state.events.iter().map(|e| if let Ev::Data(d) = e { d.len() } else { 0 }).sum()
    };
    net.settle_until("the other stream reads, a new one is accepted and reads", |lp| {
        lp.state.streams.len() == 3 && bytes(lp) == 13
    });
    net.quiet();
    let mut events = net.lp().state.events.clone();
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(events, vec![Ev::Data(b"new".to_vec()), Ev::Data(b"still here".to_vec())]);
    net.finish();
}

/// A panic in a write callback: that stream is closed, its bytes still went out; another
/// stream's write callback still runs, once.
pub(super) fn panic_in_a_write_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (bomb, mut bomb_peer) = program_connects(&mut net);
    let (_listener, addr) = silent_server(&mut net);
    let mut calm_peer = net.connect(addr).unwrap();
    let calm = accepted(&mut net, 1);
    let other = bystander(&mut net);
    bomb.write_with(net.lp(), b"boom", |_, _| panic!("write boom")).unwrap();
    calm.write_with(net.lp(), b"fine", log_as("fine")).unwrap();
    assert_eq!(settle_until_panic(&mut net, "the write callback panics"), "write boom");
    assert!(bomb.is_closing(net.lp()), "the panicking stream is closed");
    assert!(!calm.is_closing(net.lp()), "the other stream is open");
    assert_bystander_untouched(&mut net, other);
    net.settle_until("the other write callback", |lp| lp.state.log.len() == 2);
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "fine: ok"]);
    net.settle_until("both peers have their bytes", |_| {
        bomb_peer.received() == b"boom" && calm_peer.received() == b"fine"
    });
    net.settle_until("the closed stream's peer sees the end", |_| bomb_peer.end().is_some());
    calm.write_with(net.lp(), b" again", log_as("again")).unwrap();
    net.settle_until("a later write", |lp| lp.state.log.len() == 3);
    assert_eq!(net.lp().state.log[2], "again: ok");
    net.finish();
}

/// A panic in a connect callback: that stream is closed (the server's side sees the end);
/// another connect still completes.
pub(super) fn panic_in_a_connect_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (addr, server) = net.listen();
    let other = bystander(&mut net);
    let bomb = TcpStream::connect(net.lp(), addr, |_, _, _| panic!("connect boom")).unwrap();
    let mut bomb_peer = net.accept(&server);
    assert_eq!(settle_until_panic(&mut net, "the connect callback panics"), "connect boom");
    assert!(bomb.is_closing(net.lp()), "the panicking stream is closed");
    assert_bystander_untouched(&mut net, other);
    net.settle_until("the server's side sees the end", |_| bomb_peer.end().is_some());
    assert_eq!(bomb_peer.end(), Some(End::Eof));
    TcpStream::connect(net.lp(), addr, |lp, _, r| lp.state.log.push(format!("connect: {}", outcome(&r))))
        .unwrap();
    let _second = net.accept(&server);
    net.settle_until("a later connect", |lp| !lp.state.log.is_empty());
    assert_eq!(net.lp().state.log, vec!["connect: ok"]);
    net.finish();
}

/// A panic in a waker callback: that waker is closed (a wake is refused); another waker
/// woken in the same burst still gets its call, once.
pub(super) fn panic_in_a_waker_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let other = bystander(&mut net);
    let bomb = Waker::new(net.lp(), |_, _| panic!("wake boom"));
    let calm = Waker::new(net.lp(), |lp, _| lp.state.log.push("calm".into()));
    let (b, c) = (bomb.clone(), calm.clone());
    std::thread::spawn(move || {
        b.wake().unwrap();
        c.wake().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(settle_until_panic(&mut net, "the waker callback panics"), "wake boom");
    assert!(bomb.is_closing(net.lp()), "the panicking waker is closed");
    assert!(bomb.wake().is_err(), "a closed waker refuses wakes");
    assert!(calm.is_active(net.lp()));
    assert_bystander_untouched(&mut net, other);
    net.settle_until("the other waker's call", |lp| !lp.state.log.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["calm"], "its wake was not lost, and not doubled");
    calm.wake().unwrap();
    net.settle_until("a later wake", |lp| lp.state.log.len() == 2);
    net.finish();
}

/// A panic in a pool request's `after` callback: the request is gone (it cannot be
/// cancelled, it keeps nothing alive), the request behind it still completes, the pool
/// still works.
pub(super) fn panic_in_a_pool_callback<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (job, mut gate) = net.blocking_job();
    let bomb = net
        .lp()
        .queue_work(
            move || {
                job();
                1u32
            },
            |_, _| panic!("after boom"),
        )
        .unwrap();
    net.wait_job_started(&mut gate);
    net.release_job(gate);
    let (job, mut gate) = net.blocking_job();
    net.lp()
        .queue_work(
            move || {
                job();
                2u32
            },
            |lp, r| lp.state.log.push(format!("calm: {}", r.unwrap())),
        )
        .unwrap();
    // A sentinel behind both: once the only worker starts it, both have finished, so the
    // loop finds the two completions in one pass and the panic must leave the second queued.
    let (sentinel, mut sentinel_gate) = net.blocking_job();
    net.lp().queue_work(sentinel, |lp, r| lp.state.log.push(format!("sentinel: {}", outcome(&r)))).unwrap();
    net.wait_job_started(&mut gate);
    net.release_job(gate);
    net.wait_job_started(&mut sentinel_gate);
    assert_eq!(settle_until_panic(&mut net, "the after callback panics"), "after boom");
    let e = net.lp().cancel_work(bomb).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "the request is gone: {e}");
    net.release_job(sentinel_gate);
    net.settle_until("the requests behind it", |lp| lp.state.log.len() == 2);
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["calm: 2", "sentinel: ok"]);
    assert!(!net.lp().alive(), "nothing is left in flight");
    let (job, mut gate) = net.blocking_job();
    net.lp()
        .queue_work(
            move || {
                job();
                3u32
            },
            |lp, r| lp.state.log.push(format!("later: {}", r.unwrap())),
        )
        .unwrap();
    net.wait_job_started(&mut gate);
    net.release_job(gate);
    net.settle_until("a later request", |lp| lp.state.log.len() == 3);
    assert_eq!(net.lp().state.log[2], "later: 3");
    net.finish();
}

/// After close and the close phase, every method of a listener and a stream refuses the
/// stale id with InvalidInput "closed"; new handles that reuse the slots are untouched.
pub(super) fn stale_listener_and_stream_ids_are_refused<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (s, _peer) = program_connects(&mut net);
    let (l, _addr) = silent_server(&mut net);
    let slots = [slot_of(s.into()), slot_of(l.into())];
    s.close(net.lp()).unwrap();
    l.close(net.lp()).unwrap();
    net.settle_until("the close phase", |lp| s.handle().kind(lp).is_err() && l.handle().kind(lp).is_err());
    // New handles in the freed slots.
    let (addr2, server2) = net.listen();
    let s2 =
        TcpStream::connect(net.lp(), addr2, |lp, _, r| lp.state.log.push(format!("s2: {}", outcome(&r))))
            .unwrap();
    let mut s2_peer = net.accept(&server2);
    net.settle_until("the new connect", |lp| lp.state.log.len() == 2);
    let any = net.any_addr();
    let l2 = TcpListener::bind(net.lp(), any, |lp, s| lp.state.streams.push(s)).unwrap();
    let mut reused = [slot_of(s2.into()), slot_of(l2.into())];
    reused.sort();
    let mut old = slots.clone();
    old.sort();
    assert_eq!(reused, old, "the new handles reuse the freed slots");
    let lp = net.lp();
    s2.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    let before = (s2.is_reading(lp), s2.has_ref(lp), l2.is_active(lp), l2.has_ref(lp));
    assert_closed("read_start", s.read_start(lp, |_, _, _| {}));
    assert_closed("read_stop", s.read_stop(lp));
    assert_closed("read_resume", s.read_resume(lp));
    assert_closed("write", s.write(lp, b"x"));
    assert_closed("write_with", s.write_with(lp, b"x", |_, _| panic!("never")));
    assert_closed("try_write", s.try_write(lp, b"x"));
    assert_closed("write_queue_size", s.write_queue_size(lp));
    assert_closed("set_high_water_mark", s.set_high_water_mark(lp, 1));
    assert_closed("on_drain", s.on_drain(lp, |_, _| {}));
    assert_closed("shutdown", s.shutdown(lp, |_, _| {}));
    assert_closed("set_nodelay", s.set_nodelay(lp, true));
    assert_closed("nodelay", s.nodelay(lp));
    assert_closed("set_keepalive", s.set_keepalive(lp, None));
    assert_closed("peer_addr", s.peer_addr(lp));
    assert_closed("stream local_addr", s.local_addr(lp));
    assert_closed("listener local_addr", l.local_addr(lp));
    for h in [s.handle(), l.handle()] {
        assert_closed("kind", h.kind(lp));
        assert_closed("Handle::unref", h.unref(lp));
        assert_closed("Handle::ref_", h.ref_(lp));
        assert_closed("Handle::close", h.close(lp));
        assert_closed("Handle::close_with", h.close_with(lp, |_| panic!("never")));
        assert!(!h.is_active(lp) && h.is_closing(lp) && !h.has_ref(lp));
    }
    assert_closed("stream unref", s.unref(lp));
    assert_closed("stream ref_", s.ref_(lp));
    assert_closed("stream close", s.close(lp));
    assert_closed("stream close_with", s.close_with(lp, |_| panic!("never")));
    assert_closed("listener unref", l.unref(lp));
    assert_closed("listener ref_", l.ref_(lp));
    assert_closed("listener close", l.close(lp));
    assert_closed("listener close_with", l.close_with(lp, |_| panic!("never")));
    assert!(!s.is_reading(lp));
    // The new handles are untouched, and work.
    assert_eq!((s2.is_reading(lp), s2.has_ref(lp), l2.is_active(lp), l2.has_ref(lp)), before);
    assert_eq!(before, (true, true, true, true));
    assert_eq!(s2.write_queue_size(lp).unwrap(), 0);
    s2.write(lp, b"to the new one").unwrap();
    let addr = l2.local_addr(lp).unwrap();
    s2_peer.send(b"from the new one");
    let _p = net.connect(addr).unwrap();
    net.settle_until("the new stream reads, the new listener accepts", |lp| {
        !lp.state.events.is_empty() && lp.state.streams.len() == 1
    });
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"from the new one".to_vec())]);
    net.settle_until("the peer of the new stream receives", |_| s2_peer.received() == b"to the new one");
    net.finish();
}

/// An unreferenced listener and an unreferenced reading stream do not keep `run(Default)`
/// alive; referenced again, they do.
pub(super) fn unreferenced_listener_and_reading_stream<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (listener, addr) = reading_server(&mut net);
    let _peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    let lp = net.lp();
    assert!(listener.is_active(lp) && s.is_active(lp) && s.is_reading(lp));
    listener.unref(lp).unwrap();
    assert!(lp.alive(), "the reading stream keeps it alive");
    s.unref(lp).unwrap();
    assert!(!lp.alive(), "both unreferenced");
    net.run_to_end().unwrap();
    let lp = net.lp();
    assert!(listener.is_active(lp) && s.is_reading(lp), "still open, still active");
    assert!(!listener.has_ref(lp) && !s.has_ref(lp));
    listener.ref_(lp).unwrap();
    assert!(lp.alive(), "a referenced listener keeps it alive");
    assert!(lp.run(RunMode::NoWait).unwrap(), "run says so too");
    listener.unref(lp).unwrap();
    s.ref_(lp).unwrap();
    assert!(lp.alive(), "a referenced reading stream keeps it alive");
    assert!(lp.run(RunMode::NoWait).unwrap());
    s.read_stop(lp).unwrap();
    assert!(!lp.alive(), "referenced, but not reading: nothing can happen to it");
    net.run_to_end().unwrap();
    net.finish();
}

/// A wake from another thread reaches the callback, on the loop thread, once per burst.
pub(super) fn a_wake_from_another_thread_runs_the_callback_once_per_burst<N: Net<St>>() {
    let mut net = N::new(St::default());
    let loop_thread = std::thread::current().id();
    let waker = Waker::new(net.lp(), move |lp, _| {
        assert_eq!(std::thread::current().id(), loop_thread);
        lp.state.log.push("woken".into());
    });
    for burst in 1..=3 {
        let remote = waker.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                remote.wake().unwrap();
            }
        })
        .join()
        .unwrap();
        net.settle_until("the callback", |lp| lp.state.log.len() == burst);
        net.quiet();
        assert_eq!(net.lp().state.log.len(), burst, "one call per burst");
    }
    waker.close(net.lp()).unwrap();
    net.run_to_end().unwrap();
    net.finish();
}

/// Watchers and timers within one iteration: idle, prepare, check, then timers; close
/// callbacks in the next iteration, after its check phase.
pub(super) fn watcher_phase_order_within_one_iteration<N: Net<St>>() {
    let mut net = N::new(St::default());
    let lp = net.lp();
    let check = Check::new(lp, |lp, _| lp.state.log.push("check".into()));
    let prepare = Prepare::new(lp, |lp, _| lp.state.log.push("prepare".into()));
    let idle = Idle::new(lp, |lp, _| lp.state.log.push("idle".into()));
    let timer = Timer::new(lp, move |lp, t| {
        lp.state.log.push("timer".into());
        for h in [check.handle(), prepare.handle(), idle.handle(), t.handle()] {
            h.close_with(lp, |lp| lp.state.log.push("close".into())).unwrap();
        }
    });
    check.start(lp).unwrap();
    prepare.start(lp).unwrap();
    idle.start(lp).unwrap();
    timer.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state.log, vec!["idle", "prepare", "check", "timer"]);
    lp.state.log.clear();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state.log, vec!["close"; 4]);
    net.finish();
}

/// `NoWait` never blocks: a future timer does not run and the loop says it is alive.
/// `Once` blocks until the timer is due and fires it in the same call.
pub(super) fn run_modes_nowait_and_once<N: Net<St>>() {
    let mut net = N::new(St::default());
    let lp = net.lp();
    let t = Timer::new(lp, |lp, _| lp.state.log.push("fired".into()));
    t.start(lp, ms(20), Duration::ZERO).unwrap();
    let started = lp.now();
    for _ in 0..3 {
        assert!(lp.run(RunMode::NoWait).unwrap(), "alive: the timer is pending");
    }
    assert!(lp.state.log.is_empty(), "NoWait does not wait for the timer");
    assert!(!lp.run(RunMode::Once).unwrap(), "Once fires it; nothing is left");
    assert_eq!(lp.state.log, vec!["fired"]);
    assert!(lp.now() >= started + 20, "{} < {started} + 20", lp.now());
    assert!(!lp.run(RunMode::NoWait).unwrap() && !lp.run(RunMode::Once).unwrap());
    net.finish();
}

/// Active but unreferenced handles of every kind without sockets let `run(Default)` return
/// at once, without running them; still active, they run when something else keeps the
/// loop alive.
pub(super) fn unreferenced_handles_let_run_return<N: Net<St>>() {
    let mut net = N::new(St::default());
    let lp = net.lp();
    let t = Timer::new(lp, |lp, _| lp.state.log.push("timer".into()));
    t.start(lp, ms(1), ms(1)).unwrap();
    let i = Idle::new(lp, |lp, _| lp.state.log.push("idle".into()));
    i.start(lp).unwrap();
    let p = Prepare::new(lp, |lp, _| lp.state.log.push("prepare".into()));
    p.start(lp).unwrap();
    let c = Check::new(lp, |lp, _| lp.state.log.push("check".into()));
    c.start(lp).unwrap();
    let w = Waker::new(lp, |lp, _| lp.state.log.push("waker".into()));
    let all = [t.handle(), i.handle(), p.handle(), c.handle(), w.handle()];
    for h in all {
        assert!(lp.alive(), "{h:?} and the rest keep it alive");
        h.unref(lp).unwrap();
    }
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(lp.state.log.is_empty(), "nothing ran");
    assert!(all.iter().all(|h| h.is_active(lp) && !h.has_ref(lp)));
    // One referenced handle again: the loop runs, and runs the others with it.
    w.ref_(lp).unwrap();
    w.wake().unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    let mut seen = lp.state.log.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["check", "idle", "prepare", "waker"]);
    net.finish();
}

/// A double close is an error; the close callback runs once, from the loop.
pub(super) fn double_close_is_an_error_and_the_close_callback_runs_once<N: Net<St>>() {
    let mut net = N::new(St::default());
    let lp = net.lp();
    let i = Idle::new(lp, |_, _| {});
    i.close_with(lp, |lp| lp.state.log.push("closed".into())).unwrap();
    assert!(lp.state.log.is_empty(), "not inside close");
    let e = i.close_with(lp, |lp| lp.state.log.push("again".into())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("closing"), "{e}");
    lp.run(RunMode::Default).unwrap();
    assert_closed("close after the close phase", i.close(lp));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.log, vec!["closed"]);
    net.finish();
}

/// A channel, on both drivers: messages sent from another thread arrive in order, one
/// callback each, then the end once; an ended channel keeps nothing alive.
pub(super) fn channel_delivers_in_order_then_the_end<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (tx, ch) = Channel::new(net.lp(), |lp, _, msg: Option<u32>| lp.state.log.push(format!("{msg:?}")));
    std::thread::spawn(move || (0..3).for_each(|i| tx.send(i).unwrap())).join().unwrap();
    net.settle_until("the end of the channel", |lp| lp.state.log.last().is_some_and(|l| l == "None"));
    assert_eq!(net.lp().state.log, ["Some(0)", "Some(1)", "Some(2)", "None"]);
    assert!(!ch.is_active(net.lp()) && !ch.is_closing(net.lp()), "ended: open, inactive");
    net.finish();
}
