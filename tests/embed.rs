//! Embedding: a host loop polls the backend fd with `backend_timeout` and calls
//! `run(NoWait)`, as libuv's test-embed.c does.

#![cfg(unix)]

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, Timer, Waker};
use polling::{Event, Events, PollMode, Poller};

/// Drives `lp` from a host poller until it is no longer alive; returns the host iterations.
fn drive<S>(lp: &mut Loop<S>) -> u32 {
    let host = Poller::new().unwrap();
    let fd = lp.backend_fd();
    // SAFETY: the backend fd belongs to `lp`, which outlives this registration: it is
    // deleted from the host poller below, before `lp` can be dropped.
    unsafe { host.add_with_mode(fd, Event::readable(7), PollMode::Level).unwrap() };
    let mut events = Events::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rounds = 0;
    while lp.alive() {
        assert!(Instant::now() < deadline, "embedded loop did not finish");
        events.clear();
        host.wait(&mut events, lp.backend_timeout()).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        rounds += 1;
    }
    // SAFETY of the registration above ends here.
    host.delete(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
    rounds
}

#[test]
fn an_embedded_loop_driven_by_its_fd_runs_a_timer() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, Duration::from_millis(30), Duration::ZERO).unwrap();
    let rounds = drive(&mut lp);
    assert_eq!(lp.state, 1);
    // The host slept through the timeout instead of spinning.
    assert!(rounds < 1000, "host spun {rounds} times");
}

#[test]
fn an_embedded_loop_wakes_the_host_for_a_waker() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let w = Waker::new(&mut lp, |lp, w| {
        lp.state += 1;
        w.close(lp).unwrap();
    });
    assert_eq!(lp.backend_timeout(), None, "nothing but the fd can wake the host");
    let remote = w.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote.wake().unwrap();
    });
    let rounds = drive(&mut lp);
    t.join().unwrap();
    assert_eq!(lp.state, 1);
    assert!(rounds < 1000, "host spun {rounds} times");
}
