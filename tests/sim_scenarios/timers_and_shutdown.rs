//! Scenarios 10-12 and after: timer edge cases, the pool, graceful shutdown, one-batch events.

use super::*;
use crate::failures::{guarded_response, Guarded};

// ---- 10. Timer edge cases ----------------------------------------------------------------

/// A timer that logs its name and the time it fires.
pub(super) fn named(sim: &mut Sim<Vec<(&'static str, u64)>>, name: &'static str) -> Timer {
    Timer::new(sim, move |lp, _| {
        let now = lp.now();
        lp.state.push((name, now))
    })
}

#[test]
pub(super) fn s10_equal_deadlines_fire_in_start_order() {
    let mut sim = Sim::new(10, Vec::new());
    let [a, b, c] = ["a", "b", "c"].map(|n| named(&mut sim, n));
    for t in [a, b, c] {
        t.start(&mut sim, ms(100), Duration::ZERO).unwrap();
    }
    let [d, e, f] = ["d", "e", "f"].map(|n| named(&mut sim, n));
    for t in [d, e, f] {
        t.start(&mut sim, ms(200), Duration::ZERO).unwrap();
    }
    // Restarted: now the last of the three.
    d.start(&mut sim, ms(200), Duration::ZERO).unwrap();
    // Started at 50 ms for 50 ms: due with a, b, c, but started after them.
    let g = named(&mut sim, "g");
    let starter = Timer::new(&mut sim, move |lp, t| {
        g.start(lp, ms(50), Duration::ZERO).unwrap();
        t.close(lp).unwrap();
    });
    starter.start(&mut sim, ms(50), Duration::ZERO).unwrap();
    sim.run().unwrap();
    assert_eq!(
        sim.state,
        [("a", 100), ("b", 100), ("c", 100), ("g", 100), ("e", 200), ("f", 200), ("d", 200)]
    );
}

#[test]
pub(super) fn s10_a_timer_stopping_or_closing_a_sibling_due_in_the_same_pass() {
    let mut sim = Sim::new(10, Vec::new());
    let [y, z, w] = ["y", "z", "w"].map(|n| named(&mut sim, n));
    let x = Timer::new(&mut sim, move |lp, _| {
        lp.state.push(("x", lp.now()));
        y.stop(lp).unwrap(); // due now, after x: it does not fire
        z.close(lp).unwrap(); // likewise
        w.start(lp, Duration::ZERO, Duration::ZERO).unwrap(); // waits for the next pass
    });
    let v = named(&mut sim, "v");
    for t in [x, y, z, v] {
        t.start(&mut sim, ms(300), Duration::ZERO).unwrap();
    }
    sim.advance(ms(300)).unwrap();
    assert_eq!(sim.state, [("x", 300), ("v", 300), ("w", 300)]);
    sim.run().unwrap();
    assert_eq!(sim.state.len(), 3, "y never fires");
    assert!(!y.is_active(&sim));
    assert!(z.is_closing(&sim));
}

#[test]
pub(super) fn s10_a_repeating_timer_rearmed_from_its_own_callback() {
    let mut sim = Sim::new(10, Vec::new());
    // Every 10 ms; at its third firing it restarts itself for 5 ms then every 20 ms.
    let r = Timer::new(&mut sim, |lp, t| {
        let now = lp.now();
        lp.state.push(("r", now));
        match lp.state.len() {
            3 => t.start(lp, ms(5), ms(20)).unwrap(),
            6 => t.stop(lp).unwrap(),
            _ => {}
        }
    });
    r.start(&mut sim, ms(1000), ms(10)).unwrap();
    sim.run().unwrap();
    let times: Vec<u64> = sim.state.iter().map(|&(_, t)| t).collect();
    assert_eq!(times, [1000, 1010, 1020, 1025, 1045, 1065]);

    // `set_repeat` from the callback: the next firing was already armed with the old repeat.
    sim.state.clear();
    let s = Timer::new(&mut sim, |lp, t| {
        let now = lp.now();
        lp.state.push(("s", now));
        match lp.state.len() {
            1 => t.set_repeat(lp, ms(30)).unwrap(),
            4 => t.close(lp).unwrap(),
            _ => {}
        }
    });
    s.start(&mut sim, ms(100), ms(10)).unwrap();
    sim.run().unwrap();
    let times: Vec<u64> = sim.state.iter().map(|&(_, t)| t).collect();
    assert_eq!(times, [1165, 1175, 1205, 1235]);
}

// ---- 11. A slow disk read racing a request timeout ---------------------------------------

#[test]
pub(super) fn s11_a_late_disk_read_does_not_touch_the_timed_out_connection() {
    let path = std::env::temp_dir().join(format!("evloop-sim-s11-{}", std::process::id()));
    std::fs::write(&path, pattern(0, 1000)).unwrap();
    let mut sim = Sim::new(11, Vec::<String>::new());
    sim.delay_pool_jobs(secs(5)); // a slow disk
    let file = path.clone();
    let listener = TcpListener::bind(&mut sim, addr(), move |lp, stream| {
        let timeout = Timer::new(lp, move |lp, t| {
            lp.state.push(format!("timeout at {}", lp.now()));
            stream.close(lp).unwrap();
            t.close(lp).unwrap();
        });
        timeout.start(lp, secs(1), Duration::ZERO).unwrap();
        fs::read(lp, &file, move |lp, r| {
            let bytes = r.expect("the read itself succeeds");
            if stream.is_closing(lp) {
                // Timed out meanwhile: the stream and the timer are gone; do nothing.
                lp.state.push(format!("{} bytes at {}, stream closed", bytes.len(), lp.now()));
                return;
            }
            timeout.close(lp).unwrap();
            stream.write(lp, &bytes).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    sim.advance(ms(999)).unwrap();
    assert!(!peer.is_closed());
    sim.advance(ms(1)).unwrap();
    assert!(peer.is_closed(), "closed at exactly 1 s");
    assert_eq!(sim.state, ["timeout at 1000"]);
    listener.close(&mut sim).unwrap();
    sim.run().unwrap();
    assert_eq!(sim.elapsed(), secs(5), "the read completed at 5 s");
    assert_eq!(sim.state, ["timeout at 1000", "1000 bytes at 5000, stream closed"]);
    assert!(peer.recv().is_empty());
    assert_eq!(sim.handle_count(), 0);
    std::fs::remove_file(&path).unwrap();
}

// ---- 12. Graceful shutdown ---------------------------------------------------------------

pub(super) const CONNECTIONS: usize = 100;
pub(super) const BODY: usize = 100 << 10;

#[derive(Default)]
pub(super) struct App {
    listener: Option<TcpListener>,
    /// Each open connection, and whether its pool work is still in flight.
    conns: Vec<(TcpStream, bool)>,
    shutting_down: bool,
    closed: usize,
}

pub(super) fn trailer(request: &str) -> String {
    format!("done: {request}\n")
}

/// A server that answers each request with 100 KiB at once, then a trailer computed on the
/// pool.
pub(super) fn app_server(sim: &mut Sim<App>) {
    let listener = TcpListener::bind(sim, addr(), |lp, s| {
        lp.state.conns.push((s, false));
        s.read_start(lp, |lp, s, data| match data {
            Ok(b) if !b.is_empty() => {
                let request = String::from_utf8(b.to_vec()).unwrap();
                s.write(lp, &pattern(0, BODY)).unwrap();
                set_working(lp, s, true);
                lp.queue_work(
                    move || trailer(&request),
                    move |lp, r| {
                        s.write(lp, r.unwrap().as_bytes()).unwrap();
                        set_working(lp, s, false);
                        if lp.state.shutting_down {
                            finish(lp, s);
                        }
                    },
                )
                .unwrap();
            }
            _ => {} // the peers wait for our FIN before theirs
        })
        .unwrap();
    })
    .unwrap();
    sim.state.listener = Some(listener);
}

pub(super) fn set_working(lp: &mut Loop<App>, s: TcpStream, working: bool) {
    lp.state.conns.iter_mut().find(|(c, _)| *c == s).unwrap().1 = working;
}

/// FIN after the queued writes, then close.
pub(super) fn finish(lp: &mut Loop<App>, s: TcpStream) {
    s.shutdown(lp, move |lp, r| {
        r.unwrap();
        s.close_with(lp, |lp| lp.state.closed += 1).unwrap();
        lp.state.conns.retain(|(c, _)| *c != s);
    })
    .unwrap();
}

/// Stop accepting; connections with pool work in flight finish when it completes, the
/// others now.
pub(super) fn shut_down(lp: &mut Loop<App>) {
    lp.state.listener.take().unwrap().close(lp).unwrap();
    lp.state.shutting_down = true;
    let idle: Vec<TcpStream> =
        lp.state.conns.iter().filter(|(_, working)| !working).map(|&(s, _)| s).collect();
    for s in idle {
        finish(lp, s);
    }
}

/// 100 connections, half with pool work done and half with it in flight when the shutdown
/// starts at 1 s, all with writes stuck behind paused peers until 1.5 s.
pub(super) fn graceful_shutdown(sim: &mut Sim<App>) -> Vec<(FakePeer, String)> {
    app_server(sim);
    let timer = Timer::new(sim, |lp, t| {
        shut_down(lp);
        t.close(lp).unwrap();
    });
    timer.start(sim, secs(1), Duration::ZERO).unwrap();
    let mut peers = Vec::new();
    for i in 0..CONNECTIONS {
        // The first half's work takes 0.5 s, the second half's 3 s.
        sim.delay_pool_jobs(if i < CONNECTIONS / 2 { ms(500) } else { secs(3) });
        let peer = sim.connect(addr()).unwrap();
        peer.pause_reading();
        let request = format!("request {i}");
        peer.send(request.as_bytes());
        sim.run_until_idle().unwrap();
        peers.push((peer, request));
    }
    sim.advance(ms(1500)).unwrap();
    assert_eq!(sim.state.conns.len(), CONNECTIONS, "all still open: their writes are stuck");
    assert!(sim.state.shutting_down);
    assert_eq!(sim.state.conns.iter().filter(|(_, working)| *working).count(), CONNECTIONS / 2);
    assert_eq!(sim.connect(addr()).unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    for (peer, _) in &peers {
        peer.resume_reading();
    }
    sim.run().unwrap();
    peers
}

#[test]
pub(super) fn s12_graceful_shutdown_with_100_connections_in_flight() {
    let mut sim = Sim::new(12, App::default());
    let peers = graceful_shutdown(&mut sim);
    assert_eq!(sim.elapsed(), secs(3), "the last pool work finished at 3 s");
    for (peer, request) in &peers {
        let got = peer.recv();
        assert_eq!(got.len(), BODY + trailer(request).len(), "{request}");
        assert!(got[..BODY] == pattern(0, BODY), "{request}");
        assert_eq!(&got[BODY..], trailer(request).as_bytes());
        assert!(peer.is_closed() && !peer.is_reset(), "{request}: EOF after the response");
    }
    assert_eq!(sim.state.closed, CONNECTIONS);
    assert_eq!(sim.handle_count(), 0);
    // The first half closed at 1.5 s, once their writes could go; the second at 3 s.
    let closes = events(&sim.trace(), "close");
    assert_eq!(closes[0], (1000, 0), "the listener, at 1 s");
    assert_eq!(closes[1..].iter().filter(|&&(t, _)| t == 1500).count(), CONNECTIONS / 2);
    assert_eq!(closes[1..].iter().filter(|&&(t, _)| t == 3000).count(), CONNECTIONS / 2);
}

// ---- Determinism -------------------------------------------------------------------------

#[test]
pub(super) fn determinism_of_the_graceful_shutdown_and_the_reset_scenarios() {
    let trace = check_determinism(12, |sim: &mut Sim<App>| {
        graceful_shutdown(sim);
    })
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(events(&trace, "accept").len(), CONNECTIONS);

    let trace = check_determinism(6, |sim: &mut Sim<Guarded>| {
        TcpListener::bind(sim, addr(), |lp, s| guarded_response(lp, s, 8)).unwrap();
        let peer = sim.connect(addr()).unwrap();
        peer.reset_after(100_000);
        sim.run_until_idle().unwrap();
    })
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(events(&trace, "write").iter().map(|&(_, n)| n).sum::<usize>(), 100_000);
}

// ---- Regression -------------------------------------------------------------------------

/// `FakePeer::reset_after(n)`: the peer resets once it has *received* `n` bytes. With a
/// latency that is one latency after the program wrote them, and the program sees the reset
/// one latency later still (the simulator once reset the peer when the bytes were written).
#[test]
pub(super) fn reset_after_fires_when_the_bytes_arrive() {
    let mut sim = Sim::with_config(SimConfig::new().seed(13).latency(ms(50)), Vec::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.write(lp, b"0123456789").unwrap(); // at 50 ms: the connect takes one latency
        s.read_start(lp, |lp, _, data| {
            let now = lp.now();
            lp.state.push((now, data.map(|b| b.len()).map_err(|e| e.kind())));
        })
        .unwrap();
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.reset_after(10);
    sim.advance(ms(99)).unwrap();
    assert!(!peer.is_reset(), "at 99 ms the bytes have not reached the peer yet");
    sim.advance(ms(1)).unwrap();
    assert_eq!(peer.recv(), b"0123456789");
    assert!(peer.is_reset(), "reset once it has received the 10 bytes, at 100 ms");
    sim.advance(ms(50)).unwrap();
    assert_eq!(sim.state, [(150, Err(io::ErrorKind::ConnectionReset))], "the RST takes one latency back");
}

/// The simulator twin of tcp.rs's batch test, exact: two streams readable in one poll, the
/// first dispatched closes the other and connects anew; the closed one's event, which is in
/// the same batch, reaches nobody, and the replacement connection hears nothing.
#[test]
pub(super) fn events_of_a_stream_closed_earlier_in_the_batch_are_dropped() {
    #[derive(Default)]
    struct S {
        streams: Vec<TcpStream>,
        reads: usize,
        replacement: Option<TcpStream>,
    }
    let mut sim = Sim::new(21, S::default());
    let server = TcpListener::bind(&mut sim, addr(), |lp, stream| lp.state.streams.push(stream)).unwrap();
    let peers = [sim.connect(addr()).unwrap(), sim.connect(addr()).unwrap()];
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.streams.len(), 2);
    for peer in &peers {
        peer.send(b"ping");
    }
    let streams = sim.state.streams.clone();
    for (i, s) in streams.iter().enumerate() {
        let other = streams[1 - i];
        s.read_start(&mut sim, move |lp, me, _| {
            lp.state.reads += 1;
            other.close(lp).unwrap();
            me.close(lp).unwrap();
            let replacement = TcpStream::connect(lp, addr(), |lp, s, r| match r {
                Ok(()) => {
                    s.read_start(lp, |_, _, data| panic!("the replacement connection read {data:?}")).unwrap()
                }
                Err(e) => assert!(is_cancelled(&e), "replacement connect: {e}"),
            })
            .unwrap();
            lp.state.replacement = Some(replacement);
        })
        .unwrap();
    }
    let before = sim.metrics();
    sim.lp().run(evloop::RunMode::NoWait).unwrap();
    assert_eq!(sim.metrics().iterations - before.iterations, 1);
    assert_eq!(sim.metrics().io_events - before.io_events, 2, "both streams' events in the one poll");
    assert_eq!(sim.state.reads, 1, "the closed stream's event reached its reader");
    assert_eq!(events(&sim.trace(), "read").len(), 1, "one read: the closed stream's is never made");
    // The replacement connects and reads; nothing reaches it.
    sim.run_until_idle().unwrap();
    let replacement = sim.state.replacement.unwrap();
    assert!(replacement.is_reading(&sim), "the replacement connected and reads");
    assert_eq!(sim.state.streams.len(), 3, "the replacement was accepted");
    sim.run_until_idle().unwrap();
    server.close(&mut sim).unwrap();
    sim.walk(|lp, h| {
        let _ = h.close(lp);
    });
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.reads, 1);
    assert_eq!(sim.handle_count(), 0);
}

/// Graceful shutdown of the echo server, exactly: the listener closes at once (a new client
/// is refused), the open connection is still served until its client ends it, and the
/// shutdown reports `Drained` in the iteration the last connection closes.
#[test]
pub(super) fn graceful_shutdown_drains_the_open_connection() {
    let mut sim = Sim::new(61, None);
    echo_server::serve(&mut sim, addr()).unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"before");
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), b"before");
    shutdown::begin(&mut sim, Duration::from_secs(5), |lp, outcome| lp.state = Some(outcome));
    assert_eq!(sim.state, None, "never inside begin");
    assert_eq!(sim.connect(addr()).unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    sim.advance(Duration::from_secs(2)).unwrap();
    peer.send(b"during");
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), b"during", "in flight: still served");
    assert_eq!(sim.state, None);
    peer.shutdown();
    sim.run().unwrap();
    assert_eq!(sim.state, Some(shutdown::Outcome::Drained));
    assert_eq!(sim.elapsed(), Duration::from_secs(2), "ended when the connection did, not at the deadline");
    assert!(peer.is_closed());
}

/// A client that never ends its connection: at the deadline, exactly, it is closed and the
/// shutdown reports `Forced`.
#[test]
pub(super) fn graceful_shutdown_forces_what_is_left_at_the_deadline() {
    let mut sim = Sim::new(62, None);
    echo_server::serve(&mut sim, addr()).unwrap();
    let peer = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    shutdown::begin(&mut sim, Duration::from_secs(5), |lp, outcome| lp.state = Some(outcome));
    sim.run().unwrap();
    assert_eq!(sim.state, Some(shutdown::Outcome::Forced));
    assert_eq!(sim.elapsed(), Duration::from_secs(5));
    assert!(peer.is_closed() || peer.is_reset(), "the connection left was closed");
}

/// With nothing open, the shutdown reports `Drained` on the next iteration, from the loop.
#[test]
pub(super) fn graceful_shutdown_with_no_connection_ends_at_once() {
    let mut sim = Sim::new(63, None);
    echo_server::serve(&mut sim, addr()).unwrap();
    shutdown::begin(&mut sim, Duration::from_secs(5), |lp, outcome| lp.state = Some(outcome));
    assert_eq!(sim.state, None);
    sim.run().unwrap();
    assert_eq!(sim.state, Some(shutdown::Outcome::Drained));
    assert_eq!(sim.elapsed(), Duration::ZERO);
}
