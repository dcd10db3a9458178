//! TCP over real loopback sockets: echo, many connections, half-close, resets, write order
//! and queue sizes, close with queued writes, backpressure, refused connects, stale events.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{any_port, pattern, time_limit};
use evloop::{is_cancelled, Loop, RunMode, TcpListener, TcpStream};

/// Opens an echo server on a free port. At the end of a stream it shuts its side down once
/// the echoes queued so far have gone, then closes.
fn echo_server<S>(lp: &mut Loop<S>) -> (TcpListener, SocketAddr) {
    let server = TcpListener::bind(lp, any_port(), |lp, stream| {
        stream
            .read_start(lp, |lp, stream, data| match data {
                Ok(bytes) if !bytes.is_empty() => {
                    stream.write(lp, bytes).unwrap();
                }
                Ok(_) => stream.shutdown(lp, move |lp, _| stream.close(lp).unwrap()).unwrap(),
                Err(_) => stream.close(lp).unwrap(),
            })
            .unwrap();
    })
    .unwrap();
    let addr = server.local_addr(lp).unwrap();
    (server, addr)
}

#[test]
fn ten_mib_echoed_intact_through_one_connection() {
    const SIZE: usize = 10 << 20;
    let mut lp = Loop::new().unwrap();
    time_limit(&mut lp, 60);
    let (server, addr) = echo_server(&mut lp);
    // A plain blocking client: one thread writes, another reads back.
    let client = common::peer(
        &mut lp,
        move |lp| server.close(lp).unwrap(),
        move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            let mut reader = stream.try_clone().unwrap();
            let writer = thread::spawn(move || {
                let mut stream = stream;
                stream.write_all(&pattern(SIZE)).unwrap();
                stream.shutdown(Shutdown::Write).unwrap();
            });
            let mut echoed = Vec::with_capacity(SIZE);
            reader.read_to_end(&mut echoed).unwrap();
            writer.join().unwrap();
            echoed
        },
    );
    lp.run(RunMode::Default).unwrap();
    let echoed = client.join().unwrap();
    assert_eq!(echoed.len(), SIZE);
    assert!(echoed == pattern(SIZE), "echo differs from what was sent");
}

#[test]
fn ten_mib_sent_by_an_evloop_client_comes_back_intact() {
    const SIZE: usize = 10 << 20;
    let mut lp = Loop::with_state(Vec::<u8>::with_capacity(SIZE)).unwrap();
    time_limit(&mut lp, 60);
    let (server, addr) = echo_server(&mut lp);
    TcpStream::connect(&mut lp, addr, move |lp, client, result| {
        result.unwrap();
        // One write of 10 MiB: most of it is queued and goes out as the server echoes.
        client.write(lp, &pattern(SIZE)).unwrap();
        client
            .read_start(lp, move |lp, client, data| {
                let data = data.unwrap();
                lp.state.extend_from_slice(data);
                if lp.state.len() == SIZE {
                    client.close(lp).unwrap();
                    server.close(lp).unwrap();
                }
            })
            .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(lp.state == pattern(SIZE));
}

#[test]
fn a_thousand_concurrent_connections_each_echo() {
    const CONNS: usize = 1000;
    common::ensure_fd_limit(4 * CONNS as u64);
    #[derive(Default)]
    struct S {
        done: usize,
        server: Option<TcpListener>,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    time_limit(&mut lp, 60);
    let (server, addr) = echo_server(&mut lp);
    lp.state.server = Some(server);
    for i in 0..CONNS {
        let msg = format!("connection {i} says hello").into_bytes();
        TcpStream::connect(&mut lp, addr, move |lp, c, result| {
            result.unwrap();
            c.write(lp, &msg).unwrap();
            let mut got = Vec::new();
            c.read_start(lp, move |lp, c, data| {
                got.extend_from_slice(data.unwrap());
                if got.len() == msg.len() {
                    assert_eq!(got, msg);
                    c.close(lp).unwrap();
                    lp.state.done += 1;
                    if lp.state.done == CONNS {
                        let server = lp.state.server.take().unwrap();
                        server.close(lp).unwrap();
                    }
                }
            })
            .unwrap();
        })
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.done, CONNS);
    assert_eq!(lp.handle_count(), 1, "only the time-limit timer is left");
}

#[test]
fn half_close_the_peer_still_receives_the_whole_reply() {
    const REPLY: usize = 1 << 20;
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    // The server reads the request to its end, then answers with 1 MiB and closes.
    let server = TcpListener::bind(&mut lp, any_port(), |lp, stream| {
        stream
            .read_start(lp, |lp, stream, data| {
                let data = data.unwrap();
                if !data.is_empty() {
                    lp.state.extend_from_slice(data);
                    return;
                }
                stream.write(lp, &pattern(REPLY)).unwrap();
                stream
                    .shutdown(lp, move |lp, result| {
                        result.unwrap();
                        stream.close(lp).unwrap();
                    })
                    .unwrap();
            })
            .unwrap();
    })
    .unwrap();
    let addr = server.local_addr(&lp).unwrap();
    let client = common::peer(
        &mut lp,
        move |lp| server.close(lp).unwrap(),
        move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"the whole request").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).unwrap(); // ends at the server's FIN
            reply
        },
    );
    lp.run(RunMode::Default).unwrap();
    let reply = client.join().unwrap();
    assert_eq!(lp.state, b"the whole request");
    assert!(reply == pattern(REPLY));
}

#[test]
fn a_peer_reset_in_the_middle_of_a_large_write_errors_and_the_loop_serves_on() {
    #[derive(Default)]
    struct S {
        write_results: Vec<std::io::Result<()>>,
        read_errors: Vec<std::io::ErrorKind>,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    time_limit(&mut lp, 30);
    let (reset_tx, reset_rx) = mpsc::channel::<()>();
    // The first connection gets 64 MiB; the others are echoed.
    let server = TcpListener::bind(&mut lp, any_port(), move |lp, stream| {
        stream
            .read_start(lp, |lp, stream, data| match data {
                Ok(b"big") => {
                    stream
                        .write_with(lp, &pattern(64 << 20), |lp, r| lp.state.write_results.push(r))
                        .unwrap();
                }
                Ok(bytes) if !bytes.is_empty() => {
                    stream.write(lp, bytes).unwrap();
                }
                Ok(_) => stream.close(lp).unwrap(),
                Err(e) => {
                    lp.state.read_errors.push(e.kind());
                    stream.close(lp).unwrap();
                }
            })
            .unwrap();
    })
    .unwrap();
    let addr = server.local_addr(&lp).unwrap();
    let resetter = thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"big").unwrap();
        let mut buf = vec![0; 256 << 10];
        s.read_exact(&mut buf).unwrap(); // part of the response
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s); // RST
        reset_tx.send(()).unwrap();
    });
    while lp.state.write_results.is_empty() {
        lp.run(RunMode::Once).unwrap();
    }
    resetter.join().unwrap();
    reset_rx.recv().unwrap();
    let err = lp.state.write_results[0].as_ref().unwrap_err();
    assert!(
        matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert_eq!(lp.state.write_results.len(), 1, "the write callback ran once");

    // The loop keeps serving others.
    let echo = common::peer(
        &mut lp,
        move |lp| server.close(lp).unwrap(),
        move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"still there?").unwrap();
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).unwrap();
            buf
        },
    );
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&echo.join().unwrap(), b"still there?");
    assert!(lp.state.read_errors.iter().all(|k| *k == std::io::ErrorKind::ConnectionReset));
}

/// A peer that accepts one connection and reads nothing until told to, then reads it all.
fn lazy_peer() -> (SocketAddr, mpsc::Sender<()>, thread::JoinHandle<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = go_rx.recv();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    (addr, go_tx, peer)
}

#[test]
fn writes_complete_in_order_with_the_right_queue_sizes() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    let (addr, go, peer) = lazy_peer();
    const BIG: usize = 32 << 20; // more than any socket buffer takes
    TcpStream::connect(&mut lp, addr, move |lp, s, result| {
        result.unwrap();
        s.write_with(lp, b"first", |lp, r| lp.state.push(("first", r.is_ok()))).unwrap();
        assert_eq!(s.write_queue_size(lp).unwrap(), 0, "a small write goes out at once");
        s.write_with(lp, &pattern(BIG), |lp, r| lp.state.push(("big", r.is_ok()))).unwrap();
        let after_big = s.write_queue_size(lp).unwrap();
        assert!(after_big > 0 && after_big < BIG, "the kernel took part of it: {after_big}");
        s.write_with(lp, b"last", |lp, r| lp.state.push(("last", r.is_ok()))).unwrap();
        assert_eq!(s.write_queue_size(lp).unwrap(), after_big + 4, "queued behind, whole");
        assert!(lp.state.is_empty(), "no callback inside write");
        s.shutdown(lp, move |lp, r| {
            lp.state.push(("shutdown", r.is_ok()));
            s.close(lp).unwrap();
        })
        .unwrap();
        go.send(()).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let received = peer.join().unwrap();
    assert_eq!(lp.state, vec![("first", true), ("big", true), ("last", true), ("shutdown", true)]);
    let mut expected = b"first".to_vec();
    expected.extend_from_slice(&pattern(BIG));
    expected.extend_from_slice(b"last");
    assert!(received == expected);
}

#[test]
fn close_with_queued_writes_cancels_them_then_runs_the_close_callback() {
    let mut lp = Loop::with_state(Vec::<String>::new()).unwrap();
    time_limit(&mut lp, 30);
    let (addr, go, peer) = lazy_peer();
    TcpStream::connect(&mut lp, addr, move |lp, s, result| {
        result.unwrap();
        let record = |name: &'static str| {
            move |lp: &mut Loop<Vec<String>>, r: std::io::Result<()>| {
                let outcome = match r {
                    Ok(()) => "ok".to_string(),
                    Err(e) if is_cancelled(&e) => "cancelled".to_string(),
                    Err(e) => format!("error {e}"),
                };
                lp.state.push(format!("{name}: {outcome}"));
            }
        };
        s.write_with(lp, b"small", record("small")).unwrap();
        s.write_with(lp, &pattern(32 << 20), record("big")).unwrap();
        s.write_with(lp, b"tail", record("tail")).unwrap();
        s.shutdown(lp, record("shutdown")).unwrap();
        s.close_with(lp, |lp| lp.state.push("closed".into())).unwrap();
        assert!(s.write(lp, b"x").is_err(), "a closing stream refuses writes");
        go.send(()).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    peer.join().unwrap();
    assert_eq!(
        lp.state,
        vec!["small: ok", "big: cancelled", "tail: cancelled", "shutdown: cancelled", "closed"]
    );
}

#[test]
fn backpressure_stops_at_the_high_water_mark_and_drain_resumes() {
    const TOTAL: usize = 10 << 20;
    const CHUNK: usize = 16 << 10;
    const HWM: usize = 256 << 10;
    #[derive(Default)]
    struct S {
        sent: usize,
        max_queue: usize,
        drains: usize,
        paused_once: bool,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    time_limit(&mut lp, 60);
    let (addr, go, peer) = lazy_peer();

    // Writes chunks until `write` says stop, or everything is sent.
    fn produce(lp: &mut Loop<S>, s: TcpStream, go: &mpsc::Sender<()>) {
        while lp.state.sent < TOTAL {
            let chunk: Vec<u8> = (lp.state.sent..lp.state.sent + CHUNK).map(|i| (i % 251) as u8).collect();
            lp.state.sent += CHUNK;
            let below = s.write(lp, &chunk).unwrap();
            let queued = s.write_queue_size(lp).unwrap();
            lp.state.max_queue = lp.state.max_queue.max(queued);
            if !below {
                assert!(queued >= HWM);
                if !lp.state.paused_once {
                    lp.state.paused_once = true;
                    go.send(()).unwrap(); // now let the peer read
                }
                return;
            }
        }
        s.shutdown(lp, move |lp, _| s.close(lp).unwrap()).unwrap();
    }

    TcpStream::connect(&mut lp, addr, move |lp, s, result| {
        result.unwrap();
        s.set_high_water_mark(lp, HWM).unwrap();
        let go2 = go.clone();
        s.on_drain(lp, move |lp, s| {
            lp.state.drains += 1;
            assert_eq!(s.write_queue_size(lp).unwrap(), 0);
            produce(lp, s, &go2);
        })
        .unwrap();
        produce(lp, s, &go);
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let received = peer.join().unwrap();
    assert!(lp.state.paused_once, "the peer's window filled up");
    assert!(lp.state.drains >= 1);
    assert!(lp.state.max_queue < HWM + CHUNK, "queue grew to {}", lp.state.max_queue);
    assert_eq!(received.len(), TOTAL);
    assert!(received == pattern(TOTAL), "bytes arrived in order");
}

#[test]
fn connect_refused_reaches_the_callback() {
    // A socket bound to a port of its own but not listening: a connect there is refused,
    // and no other test can take the port while it is held (a listener bound, read and
    // dropped would free it for any test running in parallel).
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(&any_port().into()).unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap();
    let mut lp = Loop::with_state(None).unwrap();
    time_limit(&mut lp, 30);
    TcpStream::connect(&mut lp, port, |lp, s, result| {
        lp.state = Some(result.map_err(|e| e.kind()));
        s.close(lp).unwrap();
    })
    .unwrap();
    assert_eq!(lp.state, None, "not inside connect");
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, Some(Err(std::io::ErrorKind::ConnectionRefused)));
    drop(held);
}

#[test]
fn closing_a_connecting_stream_cancels_the_connect() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let (_server, addr) = echo_server(&mut lp);
    let s = TcpStream::connect(&mut lp, addr, |lp, _, result| {
        lp.state.push(if result.as_ref().is_err_and(is_cancelled) { "cancelled" } else { "other" });
    })
    .unwrap();
    s.close_with(&mut lp, |lp| lp.state.push("closed")).unwrap();
    _server.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["cancelled", "closed"]);
}

/// One attempt at two readable streams in one poll, the first dispatched closing the other.
/// Returns how many socket events that poll delivered: 2 when both landed in it.
fn close_the_other_in_one_batch() -> usize {
    #[derive(Default)]
    struct S {
        streams: Vec<TcpStream>,
        reads: usize,
        server: Option<TcpListener>,
        replacement: Option<TcpStream>,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    time_limit(&mut lp, 30);
    let server = TcpListener::bind(&mut lp, any_port(), |lp, stream| {
        lp.state.streams.push(stream);
    })
    .unwrap();
    let addr = server.local_addr(&lp).unwrap();
    lp.state.server = Some(server);
    let mut clients: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    while lp.state.streams.len() < 2 {
        lp.run(RunMode::Once).unwrap();
    }
    for c in &mut clients {
        c.write_all(b"ping").unwrap();
    }
    // A hint only: whether both events made it into one poll is measured below.
    thread::sleep(Duration::from_millis(20));
    let streams = lp.state.streams.clone();
    for (i, s) in streams.iter().enumerate() {
        let other = streams[1 - i];
        s.read_start(&mut lp, move |lp, me, _| {
            lp.state.reads += 1;
            other.close(lp).unwrap();
            me.close(lp).unwrap();
            // A new connection, which may reuse the closed one's descriptor: it must never
            // hear of the closed one's event, nor of anything else.
            let addr = lp.state.server.unwrap().local_addr(lp).unwrap();
            let replacement = TcpStream::connect(lp, addr, |lp, s, r| match r {
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
    let before = lp.metrics();
    lp.run(RunMode::Once).unwrap(); // registers interest and polls both at once
    assert_eq!(lp.metrics().iterations - before.iterations, 1);
    let batch = (lp.metrics().io_events - before.io_events) as usize;
    assert_eq!(lp.state.reads, 1, "the closed stream's event reached its reader");
    // Let the replacement connect and read through a few polls (bounded), then shut down.
    let replacement = lp.state.replacement.unwrap();
    for _ in 0..1000 {
        if replacement.is_reading(&lp) {
            break;
        }
        lp.run(RunMode::Once).unwrap();
    }
    assert!(replacement.is_reading(&lp), "the replacement never connected");
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    let server = lp.state.server.take().unwrap();
    server.close(&mut lp).unwrap();
    lp.walk(|lp, h| {
        let _ = h.close(lp);
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.reads, 1);
    batch
}

#[test]
fn events_of_a_handle_closed_earlier_in_the_batch_are_dropped() {
    // Two connections become readable in the same poll; whichever is dispatched first
    // closes the other and opens a new connection. The closed one's event must reach nobody.
    // The test counts only attempts in which both events provably shared the poll, and
    // retries (bounded) when the second one had not arrived in time.
    let mut batches = Vec::new();
    for _ in 0..20 {
        let batch = close_the_other_in_one_batch();
        batches.push(batch);
        if batch == 2 {
            return;
        }
    }
    panic!("no attempt had both events in one poll: socket events per poll {batches:?}");
}

#[test]
fn options_and_addresses() {
    let mut lp = Loop::with_state(None).unwrap();
    time_limit(&mut lp, 30);
    let (server, addr) = echo_server(&mut lp);
    TcpStream::connect(&mut lp, addr, move |lp, s, r| {
        r.unwrap();
        s.set_nodelay(lp, true).unwrap();
        assert!(s.nodelay(lp).unwrap());
        s.set_keepalive(lp, Some(Duration::from_secs(30))).unwrap();
        s.set_keepalive(lp, None).unwrap();
        lp.state = Some((s.peer_addr(lp).unwrap(), s.local_addr(lp).unwrap()));
        s.close(lp).unwrap();
        server.close(lp).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let (peer, local) = lp.state.unwrap();
    assert_eq!(peer, addr);
    assert_eq!(local.ip(), addr.ip());
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port_and_in_use_is_an_error() {
    use evloop::ListenOptions;
    let mut lp = Loop::new().unwrap();
    let opts = ListenOptions::new().reuse_port(true);
    let a = opts.bind(&mut lp, any_port(), |_, _| {}).unwrap();
    let addr = a.local_addr(&lp).unwrap();
    let b = opts.bind(&mut lp, addr, |_, _| {}).unwrap();
    let err = TcpListener::bind(&mut lp, addr, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    a.close(&mut lp).unwrap();
    b.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn ipv6_loopback_with_v6only() {
    use evloop::ListenOptions;
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    let Ok(server) = ListenOptions::new().only_v6(true).bind(&mut lp, "[::1]:0", |lp, s| {
        s.read_start(lp, |lp, s, d| {
            lp.state.extend_from_slice(d.unwrap());
            s.close(lp).unwrap();
        })
        .unwrap();
    }) else {
        assert!(
            std::env::var_os("EVLOOP_REQUIRE_CLIENTS").is_none(),
            "no IPv6 loopback, and EVLOOP_REQUIRE_CLIENTS is set"
        );
        eprintln!("SKIPPED: ipv6_loopback_with_v6only: no IPv6 loopback on this machine");
        return;
    };
    let addr = server.local_addr(&lp).unwrap();
    assert!(addr.is_ipv6());
    TcpStream::connect(&mut lp, addr, move |lp, c, r| {
        r.unwrap();
        c.write(lp, b"v6").unwrap();
        c.shutdown(lp, move |lp, _| {
            c.close(lp).unwrap();
            server.close(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, b"v6");
}

#[test]
fn after_a_peer_reset_reads_report_it_and_writes_fail_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let resetter = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Reset only once the client has seen its connect succeed (it then sends a byte);
        // a reset racing the connect would reach the connect callback instead.
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s); // RST
    });
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    TcpStream::connect(&mut lp, addr, |lp, s, r| {
        r.unwrap();
        s.write(lp, b"!").unwrap();
        s.read_start(lp, |lp, s, data| {
            let kind = data.err().map(|e| e.kind());
            lp.state.push(format!("read: {kind:?}"));
            let write = s.write_with(lp, b"too late", |_, _| panic!("not called: the write failed"));
            lp.state.push(format!("write failed: {}", write.is_err()));
            s.close(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    resetter.join().unwrap();
    assert_eq!(lp.state, vec!["read: Some(ConnectionReset)", "write failed: true"]);
}

#[test]
fn read_resume_keeps_the_reader_and_its_state() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    let (server, addr) = echo_server(&mut lp);
    TcpStream::connect(&mut lp, addr, move |lp, c, r| {
        r.unwrap();
        assert!(c.read_resume(lp).is_err(), "nothing to resume before read_start");
        let mut seen = 0; // state inside the reader survives the pause
        c.read_start(lp, move |lp, c, d| {
            let d = d.unwrap();
            seen += d.len();
            lp.state.push(seen);
            c.read_stop(lp).unwrap();
            if seen < 6 {
                c.write(lp, b"abc").unwrap();
                c.read_resume(lp).unwrap();
            } else {
                c.close(lp).unwrap();
                server.close(lp).unwrap();
            }
        })
        .unwrap();
        c.write(lp, b"abc").unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec![3, 6]);
}

#[test]
fn a_write_failure_while_reading_is_paused_reaches_the_reader() {
    // The peer resets while we are paused with data queued: nobody reads, and no drain can
    // come, so the read callback must hear of the failure.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = mpsc::channel::<std::net::TcpStream>();
    let peer = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        accepted_tx.send(s).unwrap();
    });
    let mut lp = Loop::with_state(Vec::<String>::new()).unwrap();
    time_limit(&mut lp, 30);
    TcpStream::connect(&mut lp, addr, move |lp, c, r| {
        r.unwrap();
        c.read_start(lp, |lp, c, d| {
            lp.state.push(format!("reader: {:?}", d.map(|b| b.len()).map_err(|e| e.kind())));
            c.close(lp).unwrap();
        })
        .unwrap();
        c.read_stop(lp).unwrap();
        // Fill the peer's window so data stays queued here.
        while c.write(lp, &[0u8; 1 << 16]).unwrap() {}
        let s = accepted_rx.recv().unwrap();
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s); // RST
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    peer.join().unwrap();
    assert_eq!(lp.state.len(), 1, "{:?}", lp.state);
    assert!(lp.state[0].starts_with("reader: Err("), "{:?}", lp.state);
}

/// The environment variable that lets [`emfile_episode_under_prlimit`] run: set by
/// [`after_an_emfile_episode_only_the_listener_and_its_streams_are_left`], which runs it in a
/// child process under `prlimit`, since it uses up every descriptor of its process.
const EMFILE_CHILD: &str = "EVLOOP_TEST_EMFILE_CHILD";

#[test]
fn after_an_emfile_episode_only_the_listener_and_its_streams_are_left() {
    if !common::have_client("after_an_emfile_episode", "prlimit") {
        return;
    }
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "emfile_episode_under_prlimit", "--ignored", "--nocapture", "--test-threads=1"])
        .env(EMFILE_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok. 1 passed"), "the child test did not run:\n{stdout}\n{stderr}");
}

/// Run by [`after_an_emfile_episode_only_the_listener_and_its_streams_are_left`] in a child
/// process under a limit of 64 descriptors.
#[test]
#[ignore = "uses up every descriptor of its process: run in a child process under prlimit"]
fn emfile_episode_under_prlimit() {
    use evloop::{Handle, HandleKind};
    use std::time::Instant;
    if std::env::var_os(EMFILE_CHILD).is_none() {
        // Run by hand with --ignored: it would take every descriptor of this process.
        eprintln!("emfile_episode_under_prlimit runs only as the child of its outer test");
        return;
    }
    /// Opens /dev/null until the process is out of descriptors (EMFILE).
    fn use_up_descriptors() -> Vec<std::fs::File> {
        let mut files = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => files.push(f),
                Err(e) if e.raw_os_error() == Some(24) => return files,
                Err(e) => panic!("{e}"),
            }
            assert!(files.len() < 64, "the limit of 64 descriptors is not in force");
        }
    }
    /// The open handles of each kind.
    fn handles_of<S>(lp: &mut Loop<S>, kind: HandleKind) -> Vec<Handle> {
        let mut found = Vec::new();
        lp.walk(|lp, h| {
            if h.kind(lp).ok() == Some(kind) {
                found.push(h);
            }
        });
        found
    }
    /// Runs single iterations until `done`, for at most 10 s.
    fn run_until(
        lp: &mut Loop<Vec<TcpStream>>,
        what: &str,
        done: impl Fn(&mut Loop<Vec<TcpStream>>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(lp) {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            lp.run(RunMode::Once).unwrap();
        }
    }
    const CLIENTS: usize = 4;

    let mut lp = Loop::with_state(Vec::<TcpStream>::new()).unwrap();
    let server = TcpListener::bind(&mut lp, any_port(), |lp, stream| lp.state.push(stream)).unwrap();
    let addr = server.local_addr(&lp).unwrap();
    // The clients wait in the backlog; then the process is out of descriptors.
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let filler = use_up_descriptors();
    run_until(&mut lp, "accept fails and the back-off timer opens", |lp| lp.handle_count() == 2);
    assert!(lp.state.is_empty());
    // The timer is the loop's own: walk does not show it, so walking and closing everything
    // cannot close it under its listener.
    let mut walked = Vec::new();
    lp.walk(|_, h| walked.push(h));
    assert_eq!(walked, vec![Handle::from(server)]);

    // Descriptors come back: every client is accepted, and the episode is over.
    drop(filler);
    run_until(&mut lp, "every client is accepted", |lp| lp.state.len() == CLIENTS);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), 1 + CLIENTS, "the listener and the streams, no back-off timer");
    assert_eq!(handles_of(&mut lp, HandleKind::TcpListener), vec![Handle::from(server)]);
    let streams: Vec<Handle> = lp.state.iter().map(|&s| Handle::from(s)).collect();
    assert_eq!(handles_of(&mut lp, HandleKind::TcpStream), streams);

    // A second episode opens a fresh timer, and closing the listener during it closes it.
    clients.push(std::net::TcpStream::connect(addr).unwrap());
    let filler = use_up_descriptors();
    run_until(&mut lp, "the second episode starts", |lp| lp.handle_count() == 1 + CLIENTS + 1);
    assert_eq!(lp.state.len(), CLIENTS, "the new client waits");
    server.close(&mut lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), CLIENTS, "the listener closed, and its back-off timer with it");
    drop(filler);
    for s in std::mem::take(&mut lp.state) {
        s.close(&mut lp).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    drop(clients);
}

/// `bind` takes what std's `TcpListener::bind` takes, as `connect` takes names too.
#[test]
fn bind_takes_strings_tuples_and_names() {
    let mut lp = Loop::new().unwrap();
    let by_str = TcpListener::bind(&mut lp, "127.0.0.1:0", |_, _| {}).unwrap();
    let by_tuple = TcpListener::bind(&mut lp, ("127.0.0.1", 0), |_, _| {}).unwrap();
    let by_name = TcpListener::bind(&mut lp, "localhost:0", |_, _| {}).unwrap();
    for l in [by_str, by_tuple, by_name] {
        let addr = l.local_addr(&lp).unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        l.close(&mut lp).unwrap();
    }
    let err = TcpListener::bind(&mut lp, "not an address", |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(!lp.run(RunMode::Default).unwrap());
}
