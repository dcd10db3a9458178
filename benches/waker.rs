//! A thread and the loop hand a wakeup back and forth: round trips per second.
//!
//! The loop's waker callback answers by waking the thread, which waits for it the way a
//! worker thread would (park/unpark), then wakes the loop again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use evloop::{Loop, RunMode, Waker};

mod common;

struct Baton {
    ready: AtomicBool,
}

fn main() {
    let round_trips = common::scale(1_000_000, 2_000);
    let baton = Arc::new(Baton { ready: AtomicBool::new(false) });
    let (tx, rx) = std::sync::mpsc::channel::<thread::Thread>();
    let mut lp = Loop::with_state((0u64, baton.clone(), None::<thread::Thread>)).unwrap();
    let waker = Waker::new(&mut lp, move |lp, w| {
        lp.state.0 += 1;
        if lp.state.2.is_none() {
            lp.state.2 = rx.try_recv().ok();
        }
        lp.state.1.ready.store(true, Ordering::Release);
        if let Some(t) = &lp.state.2 {
            t.unpark();
        }
        if lp.state.0 == round_trips {
            w.close(lp).unwrap();
        }
    });

    let remote = waker.clone();
    let peer = thread::spawn(move || {
        tx.send(thread::current()).unwrap();
        for _ in 0..round_trips {
            remote.wake().unwrap();
            while !baton.ready.swap(false, Ordering::Acquire) {
                thread::park();
            }
        }
    });
    let start = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    peer.join().unwrap();
    assert_eq!(lp.state.0, round_trips);
    common::report("waker", "round trips/s", common::rate(round_trips, elapsed), "/s");
}
