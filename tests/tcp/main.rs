//! TCP over real loopback sockets: echo, many connections, half-close, resets, write order
//! and queue sizes, close with queued writes, backpressure. Refused connects, stale events,
//! options and addresses are in `lifecycle.rs`; running out of descriptors in `emfile.rs`.

#[path = "../common/mod.rs"]
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

mod emfile;
mod lifecycle;
