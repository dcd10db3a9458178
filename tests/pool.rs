//! The thread pool: results come back to the loop, FIFO, cancellation, panics, many requests,
//! the size bound.

mod common;

use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::time_limit;
use evloop::{is_cancelled, Loop, RunMode};

fn pool_of<S>(threads: usize, state: S) -> Loop<S> {
    Loop::builder().state(state).threadpool_size(threads).build().unwrap()
}

#[test]
fn work_runs_off_the_loop_thread_and_after_runs_on_it() {
    let loop_thread = thread::current().id();
    let mut lp = Loop::with_state(None).unwrap();
    assert_eq!(lp.threadpool_threads(), 0, "workers start on first use");
    lp.queue_work(
        move || {
            assert_ne!(thread::current().id(), loop_thread);
            thread::current().name().map(str::to_string)
        },
        move |lp, result| {
            assert_eq!(thread::current().id(), loop_thread);
            lp.state = result.unwrap();
        },
    )
    .unwrap();
    assert!(lp.alive(), "a pending request keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(lp.state.unwrap().starts_with("evloop-pool-"));
}

#[test]
fn work_is_taken_in_fifo_order() {
    let mut lp = pool_of(1, Vec::new());
    for i in 0..100 {
        lp.queue_work(move || i, |lp, r| lp.state.push(r.unwrap())).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, (0..100).collect::<Vec<_>>());
}

/// Work queued outside `run` starts at once, even with every worker idle and waiting: a
/// program may wait for it before it runs the loop.
#[test]
fn work_queued_outside_run_starts_without_the_loop_running() {
    let mut lp = pool_of(1, 0u32);
    time_limit(&mut lp, 30);
    // The worker exists and is idle.
    lp.queue_work(|| (), |lp, r| lp.state += u32::from(r.is_ok())).unwrap();
    lp.run(RunMode::Default).unwrap();
    let (tx, rx) = mpsc::channel();
    lp.queue_work(move || tx.send(()).unwrap(), |lp, r| lp.state += u32::from(r.is_ok())).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the work started before the loop ran");
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 2);
}

#[test]
fn a_queued_request_is_cancelled_and_a_running_one_is_not() {
    let mut lp = pool_of(1, Vec::<String>::new());
    time_limit(&mut lp, 30);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (ran_tx, ran_rx) = mpsc::channel::<&str>();
    let running = lp
        .queue_work(
            move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                "running finished"
            },
            |lp, r| lp.state.push(r.unwrap().to_string()),
        )
        .unwrap();
    let queued = lp
        .queue_work(
            move || {
                ran_tx.send("the cancelled job ran").unwrap();
            },
            |lp, r| {
                lp.state.push(
                    if r.is_err_and(|e| is_cancelled(&e)) { "cancelled" } else { "not cancelled" }.into(),
                )
            },
        )
        .unwrap();
    started_rx.recv().unwrap(); // the first job holds the only worker
    lp.cancel_work(queued).unwrap();
    assert!(lp.state.is_empty(), "after never runs inside cancel");
    let busy = lp.cancel_work(running).unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::ResourceBusy);
    assert!(lp.cancel_work(queued).is_err(), "cancelled twice");
    release_tx.send(()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["cancelled", "running finished"]);
    assert!(ran_rx.try_recv().is_err(), "cancelled work never runs");
    assert!(lp.cancel_work(running).is_err(), "a completed request cannot be cancelled");
}

#[test]
fn a_panic_in_work_reaches_after_and_the_pool_keeps_its_size() {
    let mut lp = pool_of(2, Vec::new());
    lp.queue_work(|| -> u32 { panic!("disk on fire") }, |lp, r| lp.state.push(r.map_err(|e| e.to_string())))
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let err = lp.state.pop().unwrap().unwrap_err();
    assert!(err.contains("disk on fire"), "{err}");
    // Both workers still serve.
    let mut names = HashSet::new();
    let (tx, rx) = mpsc::channel();
    for _ in 0..50 {
        let tx = tx.clone();
        lp.queue_work(
            move || {
                tx.send(thread::current().name().unwrap().to_string()).unwrap();
                thread::sleep(Duration::from_millis(2));
                1u32
            },
            |lp, r| lp.state.push(r.map_err(|e| e.to_string())),
        )
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    names.extend(rx.try_iter());
    assert_eq!(lp.state.len(), 50);
    assert!(lp.state.iter().all(|r| r == &Ok(1)));
    assert_eq!(lp.threadpool_threads(), 2);
    assert!(names.len() <= 2, "{names:?}");
}

#[test]
fn ten_thousand_requests_in_flight_complete_exactly_once_each() {
    const N: usize = 10_000;
    let mut lp = pool_of(4, vec![0u8; N]);
    time_limit(&mut lp, 60);
    let (tx, rx) = mpsc::channel();
    for i in 0..N {
        let tx = tx.clone();
        lp.queue_work(
            move || {
                tx.send(thread::current().id()).unwrap();
                i
            },
            |lp, r| lp.state[r.unwrap()] += 1,
        )
        .unwrap();
    }
    assert!(lp.alive());
    lp.run(RunMode::Default).unwrap();
    assert!(lp.state.iter().all(|&n| n == 1), "some request completed other than once");
    let threads: HashSet<_> = rx.try_iter().collect();
    assert!(threads.len() <= 4, "{} worker threads for a pool of 4", threads.len());
    assert_eq!(lp.threadpool_threads(), 4);
    assert!(lp.metrics().callbacks >= N as u64);
}

#[test]
fn completions_interleave_with_timers_and_never_block_them() {
    use evloop::Timer;
    let mut lp = pool_of(1, Vec::new());
    let t = Timer::new(&mut lp, |lp, _| lp.state.push("timer"));
    t.start(&mut lp, Duration::from_millis(1), Duration::ZERO).unwrap();
    lp.queue_work(|| thread::sleep(Duration::from_millis(100)), |lp, _| lp.state.push("work")).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["timer", "work"]);
}
