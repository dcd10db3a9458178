//! Channel throughput: messages from other threads to a callback on the loop thread.
//!
//! - `Channel`, 1 producer thread and 4 producer threads;
//! - the same work hand-made from std's `mpsc` plus a `Waker` (what a program without
//!   `Channel` would write): producers send, then wake; the waker's callback drains;
//! - calloop's `channel` (also std's `mpsc` plus a wakeup, its `ping`), on a calloop
//!   `EventLoop` dispatched until every sender is gone.
//!
//! Each case sends `n` small messages and counts the time from the first send to the last
//! delivery.

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use evloop::{Channel, Loop, RunMode, Waker};

mod common;

/// Starts `producers` threads that each send their share of `n` through a clone of `tx`,
/// which is dropped here (so the channel ends when the threads do).
fn spawn_producers<T: Clone + Send + 'static>(
    tx: T,
    n: u64,
    producers: u64,
    send: fn(&T, u64),
) -> Vec<thread::JoinHandle<()>> {
    (0..producers)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || (0..n / producers).for_each(|i| send(&tx, i)))
        })
        .collect()
}

fn channel(n: u64, producers: u64) -> f64 {
    let mut lp = Loop::with_state(0u64).unwrap();
    let (tx, _ch) = Channel::new(&mut lp, |lp, _, msg: Option<u64>| {
        if msg.is_some() {
            lp.state += 1;
        }
    });
    let start = Instant::now();
    let threads = spawn_producers(tx, n, producers, |tx, i| tx.send(i).unwrap());
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(lp.state, n / producers * producers);
    common::rate(lp.state, elapsed)
}

fn mpsc_and_waker(n: u64, producers: u64) -> f64 {
    struct St {
        rx: mpsc::Receiver<u64>,
        got: u64,
        want: u64,
    }
    let (tx, rx) = mpsc::channel();
    let want = n / producers * producers;
    let mut lp = Loop::with_state(St { rx, got: 0, want }).unwrap();
    let waker = Waker::new(&mut lp, |lp, w| {
        while lp.state.rx.try_recv().is_ok() {
            lp.state.got += 1;
        }
        if lp.state.got == lp.state.want {
            w.close(lp).unwrap();
        }
    });
    let start = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let (tx, waker) = (tx.clone(), waker.clone());
            thread::spawn(move || {
                for i in 0..n / producers {
                    tx.send(i).unwrap();
                    waker.wake().unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    threads.into_iter().for_each(|t| t.join().unwrap());
    common::rate(lp.state.got, elapsed)
}

fn calloop_channel(n: u64, producers: u64) -> f64 {
    struct St {
        got: u64,
        closed: bool,
    }
    let mut event_loop = calloop::EventLoop::<St>::try_new().unwrap();
    let (tx, rx) = calloop::channel::channel::<u64>();
    event_loop
        .handle()
        .insert_source(rx, |event, _, st| match event {
            calloop::channel::Event::Msg(_) => st.got += 1,
            calloop::channel::Event::Closed => st.closed = true,
        })
        .unwrap();
    let mut st = St { got: 0, closed: false };
    let start = Instant::now();
    let threads = spawn_producers(tx, n, producers, |tx, i| tx.send(i).unwrap());
    while !st.closed {
        event_loop.dispatch(None, &mut st).unwrap();
    }
    let elapsed = start.elapsed();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(st.got, n / producers * producers);
    common::rate(st.got, elapsed)
}

fn main() {
    let n = common::scale(5_000_000, 10_000);
    for producers in [1, 4] {
        let case = format!("{producers} thread{}", if producers == 1 { "" } else { "s" });
        common::report("channel", &format!("Channel, {case}"), channel(n, producers), "msg/s");
        common::report("channel", &format!("mpsc+Waker, {case}"), mpsc_and_waker(n, producers), "msg/s");
        common::report("channel", &format!("calloop, {case}"), calloop_channel(n, producers), "msg/s");
    }
}
