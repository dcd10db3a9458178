//! Embedding evloop in a host program that has its own event loop.
//!
//! The host here is a plain `polling` loop that also watches its own things (a timer of its
//! own, in this sketch). It adds evloop's backend fd to its poller, waits with
//! `backend_timeout()` as the limit, and calls `run(RunMode::NoWait)` whenever evloop's fd is
//! readable or the timeout expires. evloop never blocks the host.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, Timer, Waker};
use polling::{Event, Events, PollMode, Poller};

const EVLOOP_KEY: usize = 1;

fn main() -> std::io::Result<()> {
    env_logger::init();

    // The guest: an evloop loop with a repeating timer and a waker fed by a thread.
    let mut lp = Loop::with_state(0u32)?;
    let ticker = Timer::new(&mut lp, |lp, t| {
        lp.state += 1;
        println!("[evloop {:>4} ms] tick {}", lp.now(), lp.state);
        if lp.state == 4 {
            t.close(lp).unwrap();
        }
    });
    ticker.start(&mut lp, Duration::from_millis(25), Duration::from_millis(25))?;
    let waker = Waker::new(&mut lp, |lp, w| {
        println!("[evloop {:>4} ms] woken by another thread", lp.now());
        w.close(lp).unwrap();
    });
    let remote = waker.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        remote.wake().unwrap();
    });

    // The host: its own poller, with evloop's backend fd registered in it.
    let host = Poller::new()?;
    let fd = lp.backend_fd();
    // SAFETY: `fd` is evloop's backend fd; `lp` lives until after the `delete` below.
    unsafe { host.add_with_mode(fd, Event::readable(EVLOOP_KEY), PollMode::Level)? };

    let started = Instant::now();
    let mut host_heartbeat = started + Duration::from_millis(40);
    let mut events = Events::new();
    let mut host_rounds = 0u32;
    while lp.alive() {
        // The host's own deadline and evloop's, whichever is sooner.
        let host_timeout = host_heartbeat.saturating_duration_since(Instant::now());
        let timeout = match lp.backend_timeout() {
            Some(t) => t.min(host_timeout),
            None => host_timeout,
        };
        events.clear();
        host.wait(&mut events, Some(timeout))?;
        host_rounds += 1;
        if Instant::now() >= host_heartbeat {
            println!("[host   {:>4} ms] host heartbeat", started.elapsed().as_millis());
            host_heartbeat += Duration::from_millis(40);
        }
        // evloop's fd was readable, or its timeout passed: let it run without blocking.
        lp.run(RunMode::NoWait)?;
    }
    host.delete(
        // SAFETY: `fd` is still open: `lp` is alive here.
        unsafe { BorrowedFd::borrow_raw(fd) },
    )?;
    thread.join().unwrap();
    println!("evloop finished after {host_rounds} host iterations");
    Ok(())
}
