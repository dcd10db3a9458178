//! Cross-thread wakers (libuv's uv_async): coalescing, no lost wakes, closed wakers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use evloop::{Loop, RunMode, Timer, Waker};

#[test]
fn the_callback_runs_on_the_loop_thread() {
    let loop_thread = thread::current().id();
    let mut lp = Loop::with_state(0u32).unwrap();
    let waker = Waker::new(&mut lp, move |lp, w| {
        assert_eq!(thread::current().id(), loop_thread);
        lp.state += 1;
        w.close(lp).unwrap();
    });
    let remote = waker.clone();
    let t = thread::spawn(move || remote.wake().unwrap());
    lp.run(RunMode::Default).unwrap();
    t.join().unwrap();
    assert_eq!(lp.state, 1);
}

#[test]
fn wakes_before_the_callback_runs_coalesce_into_one_call() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let waker = Waker::new(&mut lp, |lp, _| lp.state += 1);
    for _ in 0..1000 {
        waker.wake().unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, 1);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, 1, "no wake, no call");
    waker.wake().unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, 2);
}

/// Eight threads wake 100,000 times each; each publishes its progress before every wake. The
/// loop stops once the callback has seen every thread's last value, which it can only do if
/// no wake after the last publication is lost.
#[test]
fn eight_threads_waking_100k_times_each_never_lose_the_last_wake() {
    const THREADS: usize = 8;
    const WAKES: u64 = 100_000;
    struct S {
        progress: Arc<Vec<AtomicU64>>,
        calls: u64,
    }
    let progress: Arc<Vec<_>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let mut lp = Loop::with_state(S { progress: progress.clone(), calls: 0 }).unwrap();
    let waker = Waker::new(&mut lp, |lp, w| {
        lp.state.calls += 1;
        if lp.state.progress.iter().all(|p| p.load(Ordering::Acquire) == WAKES) {
            w.close(lp).unwrap();
        }
    });
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let waker = waker.clone();
            let progress = progress.clone();
            thread::spawn(move || {
                for n in 1..=WAKES {
                    progress[i].store(n, Ordering::Release);
                    waker.wake().unwrap();
                }
            })
        })
        .collect();
    // A guard so a lost wake fails the test instead of hanging it.
    let guard = Timer::new(&mut lp, |_, _| panic!("a wake was lost: the loop waited 60 s"));
    guard.start(&mut lp, Duration::from_secs(60), Duration::ZERO).unwrap();
    guard.unref(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    for t in threads {
        t.join().unwrap();
    }
    // Coalesced: wakes that arrive while the loop is busy make one call, so the callback
    // runs at most once per loop iteration (the loop scans its wakers once per poll), and
    // far fewer times than the 800,000 wakes.
    let iterations = lp.metrics().iterations;
    assert!(lp.state.calls <= iterations, "{} calls in {iterations} iterations", lp.state.calls);
    assert!(lp.state.calls < THREADS as u64 * WAKES, "{} calls: no wake coalesced", lp.state.calls);
}

#[test]
fn waking_a_closed_waker_is_an_error() {
    let mut lp = Loop::new().unwrap();
    let waker = Waker::new(&mut lp, |_, _| panic!("never called after close"));
    waker.close(&mut lp).unwrap();
    assert!(waker.wake().is_err());
    lp.run(RunMode::Default).unwrap();
    assert!(waker.wake().is_err());
}

#[test]
fn a_wake_pending_at_close_is_dropped() {
    let mut lp = Loop::new().unwrap();
    let waker = Waker::new(&mut lp, |_, _| panic!("never called after close"));
    waker.wake().unwrap();
    waker.close(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn waking_after_the_loop_is_dropped_is_an_error_not_a_crash() {
    let mut lp = Loop::new().unwrap();
    let waker = Waker::new(&mut lp, |_, _| {});
    let remote = waker.clone();
    drop(lp);
    let t = thread::spawn(move || remote.wake().is_err());
    assert!(t.join().unwrap());
}

#[test]
fn a_waker_keeps_default_running_until_closed_or_unrefd() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let w = Waker::new(&mut lp, |_, _| {});
    assert!(lp.alive());
    w.unref(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    w.ref_(&mut lp).unwrap();
    let closer = w.clone();
    let t = Timer::new(&mut lp, move |lp, _| closer.close(lp).unwrap());
    t.start(&mut lp, Duration::from_millis(5), Duration::ZERO).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn a_waker_closing_itself_does_not_lose_another_wakers_wake() {
    // Regression: closing a waker from its own callback shifted the list being scanned, so
    // the next woken waker was skipped and its wake lost.
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let a = Waker::new(&mut lp, |lp, w| {
        lp.state.push("a");
        w.close(lp).unwrap();
    });
    let b = Waker::new(&mut lp, |lp, _| lp.state.push("b"));
    let c = Waker::new(&mut lp, |lp, _| lp.state.push("c"));
    a.wake().unwrap();
    b.wake().unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(lp.state, vec!["a", "b"]);
    c.wake().unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["a", "b", "c"]);
    b.close(&mut lp).unwrap();
    c.close(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}
