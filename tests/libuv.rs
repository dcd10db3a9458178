//! Ports of libuv's own tests that the other files do not already cover, one function per
//! libuv test, named after it: test-active.c, test-close-order.c, test-callback-stack.c,
//! test-loop-alive.c, test-threadpool.c, test-tcp-connect-error-after-write.c. libuv's
//! suite is the reference for the semantics evloop copies; where evloop differs on purpose,
//! the test says so.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::time_limit;
use evloop::{is_cancelled, Check, Loop, RunMode, TcpListener, TcpStream, Timer};

/// test-active.c: a timer is active between start and stop, and never once closing.
#[test]
fn active() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| panic!("never fires"));
    assert!(!t.is_active(&lp) && !t.is_closing(&lp));
    t.start(&mut lp, Duration::from_secs(1), Duration::ZERO).unwrap();
    assert!(t.is_active(&lp));
    t.stop(&mut lp).unwrap();
    assert!(!t.is_active(&lp));
    t.start(&mut lp, Duration::from_secs(1), Duration::ZERO).unwrap();
    assert!(t.is_active(&lp));
    t.close(&mut lp).unwrap();
    assert!(!t.is_active(&lp) && t.is_closing(&lp), "closing is never active");
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// test-close-order.c: a check callback closes itself and two timers, one of them due now.
/// The due timer never fires, and the close callbacks run once each, in close order, in the
/// same iteration's close phase.
#[test]
fn close_order() {
    let mut lp = Loop::with_state(Vec::<&str>::new()).unwrap();
    let due = Timer::new(&mut lp, |lp, _| lp.state.push("due timer fired"));
    let later = Timer::new(&mut lp, |lp, _| lp.state.push("later timer fired"));
    due.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    later.start(&mut lp, Duration::from_secs(100), Duration::ZERO).unwrap();
    let check = Check::new(&mut lp, move |lp, check| {
        lp.state.push("check");
        check.close_with(lp, |lp| lp.state.push("close check")).unwrap();
        due.close_with(lp, |lp| lp.state.push("close due")).unwrap();
        later.close_with(lp, |lp| lp.state.push("close later")).unwrap();
    });
    check.start(&mut lp).unwrap();
    // The due timer would fire in `Default`'s timer pass before the first iteration; run
    // one iteration in `NoWait`, where timers run after the poll, as libuv's does.
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["check", "close check", "close due", "close later"]);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// test-callback-stack.c: no callback runs inside the call that asked for it: not a
/// connect, a write, a shutdown or a close callback, nor a read.
#[test]
fn callback_stack() {
    struct St {
        nested: bool,
        log: Vec<&'static str>,
    }
    fn record(lp: &mut Loop<St>, what: &'static str) {
        assert!(!lp.state.nested, "{what} ran inside the call that asked for it");
        lp.state.log.push(what);
    }
    /// Runs `f` with the flag up, as libuv's test wraps each call in `nested++`/`nested--`.
    fn nested<R>(lp: &mut Loop<St>, f: impl FnOnce(&mut Loop<St>) -> R) -> R {
        lp.state.nested = true;
        let r = f(lp);
        lp.state.nested = false;
        r
    }
    let mut lp = Loop::with_state(St { nested: false, log: Vec::new() }).unwrap();
    time_limit(&mut lp, 30);
    let server = TcpListener::bind(&mut lp, "127.0.0.1:0", |lp, s| {
        // Echo, then end the stream after the peer's end.
        s.read_start(lp, |lp, s, d| match d {
            Ok(b) if !b.is_empty() => {
                s.write(lp, b).unwrap();
            }
            _ => s.shutdown(lp, move |lp, _| s.close(lp).unwrap()).unwrap(),
        })
        .unwrap();
    })
    .unwrap();
    let addr = server.local_addr(&lp).unwrap();
    let client = nested(&mut lp, |lp| {
        TcpStream::connect(lp, addr, move |lp, c, r| {
            r.unwrap();
            record(lp, "connect");
            nested(lp, |lp| {
                c.write_with(lp, b"PING", |lp, r| {
                    r.unwrap();
                    record(lp, "write");
                })
                .unwrap();
                c.read_start(lp, move |lp, c, d| match d {
                    Ok(b) if !b.is_empty() => {
                        record(lp, "read");
                        nested(lp, |lp| {
                            c.shutdown(lp, |lp, r| {
                                r.unwrap();
                                record(lp, "shutdown");
                            })
                            .unwrap()
                        });
                    }
                    Ok(_) => {
                        record(lp, "end of stream");
                        nested(lp, |lp| {
                            c.close_with(lp, move |lp| {
                                record(lp, "close");
                                server.close(lp).unwrap();
                            })
                            .unwrap()
                        });
                    }
                    Err(e) => panic!("read: {e}"),
                })
                .unwrap();
            });
        })
        .unwrap()
    });
    lp.run(RunMode::Default).unwrap();
    let log = &lp.state.log;
    assert_eq!(log.first(), Some(&"connect"));
    for what in ["write", "read", "shutdown", "end of stream", "close"] {
        assert_eq!(log.iter().filter(|&&l| l == what).count(), 1, "{what} once: {log:?}");
    }
    assert!(client.is_closing(&lp));
}

/// test-loop-alive.c: a loop is alive while a referenced timer is active or work is
/// queued, and not after.
#[test]
fn loop_alive() {
    let mut lp = Loop::new().unwrap();
    assert!(!lp.alive());
    let t = Timer::new(&mut lp, |_, _| {});
    t.start(&mut lp, Duration::from_millis(1), Duration::ZERO).unwrap();
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(!lp.alive(), "a fired one-shot timer keeps nothing alive");
    lp.queue_work(|| (), |_, r| r.unwrap()).unwrap();
    assert!(lp.alive(), "queued work keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(!lp.alive());
    t.close(&mut lp).unwrap();
}

/// test-threadpool.c (threadpool_queue_work_simple): the work runs on another thread, its
/// result comes back on the loop thread, from the loop.
#[test]
fn threadpool_queue_work_simple() {
    let mut lp = Loop::with_state(None).unwrap();
    let loop_thread = std::thread::current().id();
    let ran = Rc::new(Cell::new(false));
    let seen = ran.clone();
    lp.queue_work(
        move || std::thread::current().id(),
        move |lp, r| {
            assert_eq!(std::thread::current().id(), loop_thread, "after runs on the loop thread");
            seen.set(true);
            lp.state = Some(r.unwrap());
        },
    )
    .unwrap();
    assert!(!ran.get(), "not inside queue_work");
    lp.run(RunMode::Default).unwrap();
    let worker = lp.state.unwrap();
    assert_ne!(worker, loop_thread, "work runs on a worker thread");
}

/// test-tcp-connect-error-after-write.c: writes queued on a connecting stream get the
/// connect's error when the connect fails, after the connect callback (libuv reports the
/// write with `UV_ECANCELED` after a failed connect; evloop gives the connect's own error,
/// which says why).
#[test]
fn tcp_connect_error_after_write() {
    // Bound but not listening, and held for the whole test: a connect is refused, and no
    // other test running in parallel can take the port meanwhile.
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    let dead = holder.local_addr().unwrap().as_socket().unwrap();
    let mut lp = Loop::with_state(Vec::<String>::new()).unwrap();
    time_limit(&mut lp, 30);
    let s = TcpStream::connect(&mut lp, dead, |lp, _, r| {
        lp.state.push(format!("connect: {:?}", r.unwrap_err().kind()));
    })
    .unwrap();
    s.write_with(&mut lp, b"never sent", |lp, r| {
        let e = r.unwrap_err();
        assert!(!is_cancelled(&e));
        lp.state.push(format!("write: {:?}", e.kind()));
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap(), "the failed stream keeps nothing alive");
    assert_eq!(lp.state, vec!["connect: ConnectionRefused", "write: ConnectionRefused"]);
    s.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}
