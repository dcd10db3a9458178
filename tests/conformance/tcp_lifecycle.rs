//! Bodies: half-close, shutdown, close, resets with writes queued, accept order, liveness.

use super::*;

/// Half-close: after the peer's FIN the program still writes a reply, then shuts down; the
/// peer gets the whole reply, then the end.
pub(super) fn half_close_program_still_writes<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        s.read_start(lp, |lp, s, d| {
            let ev = Ev::of(d);
            let eof = ev == Ev::Eof;
            lp.state.events.push(ev);
            if eof {
                s.write_with(lp, b"the reply", log_as("reply")).unwrap();
                s.shutdown(lp, move |lp, r| {
                    lp.state.log.push(format!("shutdown: {}", outcome(&r)));
                    s.close(lp).unwrap();
                })
                .unwrap();
            }
        })
        .unwrap();
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let mut peer = net.connect(addr).unwrap();
    peer.send(b"the request");
    peer.shutdown();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    net.settle_until("the shutdown callback", |lp| lp.state.log.len() == 2);
    assert_eq!(peer.end(), Some(End::Eof));
    assert_eq!(peer.received(), b"the reply");
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"the request".to_vec()), Ev::Eof]);
    assert_eq!(net.lp().state.log, vec!["reply: ok", "shutdown: ok"]);
    net.finish();
}

/// The program shuts down its side first and still reads what the peer sends after.
pub(super) fn program_shutdown_then_reads<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        s.write(lp, b"hi").unwrap();
        s.shutdown(lp, log_as("shutdown")).unwrap();
        s.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let mut peer = net.connect(addr).unwrap();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    assert_eq!(peer.received(), b"hi");
    assert_eq!(peer.end(), Some(End::Eof));
    peer.send(b"after your FIN");
    peer.shutdown();
    net.settle_until("the program sees the end", |lp| lp.state.events.contains(&Ev::Eof));
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"after your FIN".to_vec()), Ev::Eof]);
    assert_eq!(net.lp().state.log, vec!["shutdown: ok"]);
    net.finish();
}

/// Closing with writes queued cancels them (and the shutdown) in order, then the close
/// callback runs; what the socket already took reaches the peer, then FIN.
pub(super) fn close_cancels_queued_writes<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    let lp = net.lp();
    s.write_with(lp, b"small", log_as("small")).unwrap();
    s.write_with(lp, &pattern(big), log_as("big")).unwrap();
    assert!(s.write_queue_size(lp).unwrap() > 0);
    s.write_with(lp, b"tail", log_as("tail")).unwrap();
    s.shutdown(lp, log_as("shutdown")).unwrap();
    s.close_with(lp, |lp| lp.state.log.push("closed".into())).unwrap();
    assert!(s.write(lp, b"x").is_err(), "a closing stream refuses writes");
    net.settle_until("the close callback", |lp| lp.state.log.last().is_some_and(|l| l == "closed"));
    assert_eq!(
        net.lp().state.log,
        vec![
            "connect: ok",
            "small: ok",
            "big: cancelled",
            "tail: cancelled",
            "shutdown: cancelled",
            "closed"
        ]
    );
    peer.resume();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    assert_eq!(peer.end(), Some(End::Eof));
    let mut sent = b"small".to_vec();
    sent.extend_from_slice(&pattern(big));
    let got = peer.received();
    assert!(got.len() > 5 && got.len() < sent.len(), "part of the big write went: {}", got.len());
    assert!(sent.starts_with(got), "what arrived is a prefix of what was written");
    net.finish();
}

/// Closing with unread input resets the connection: the peer sees `ConnectionReset`.
pub(super) fn close_with_unread_input_resets<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = silent_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.send(b"never read");
    s.close(net.lp()).unwrap();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    assert_eq!(peer.end(), Some(End::Reset));
    net.finish();
}

/// Closing with nothing unread is graceful: the peer gets what was written, then FIN.
pub(super) fn close_with_nothing_unread_is_graceful<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        s.write(lp, b"bye").unwrap();
        s.close(lp).unwrap();
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let mut peer = net.connect(addr).unwrap();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    assert_eq!(peer.received(), b"bye");
    assert_eq!(peer.end(), Some(End::Eof));
    net.finish();
}

/// A peer resets while writes are queued: each queued write's callback gets
/// `ConnectionReset`, in order.
pub(super) fn reset_fails_queued_writes<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    s.write_with(net.lp(), &pattern(big), log_as("big")).unwrap();
    s.write_with(net.lp(), b"tail", log_as("tail")).unwrap();
    assert!(s.write_queue_size(net.lp()).unwrap() > 0);
    peer.reset();
    net.settle_until("the write callbacks", |lp| lp.state.log.len() == 3);
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "big: ConnectionReset", "tail: ConnectionReset"]);
    assert_eq!(s.write(net.lp(), b"more").unwrap_err().kind(), ErrorKind::ConnectionReset);
    net.finish();
}

/// The peer closes its socket (not only its sending side). The program reads the end,
/// writes anyway: the peer's kernel answers with a reset, and a later write fails with
/// EPIPE (Linux turns a reset in CLOSE_WAIT into EPIPE, not ECONNRESET).
pub(super) fn write_to_a_closed_peer_fails<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.close();
    net.settle_until("the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    s.write_with(net.lp(), b"into the void", log_as("first")).unwrap();
    let mut error = None;
    net.settle_until("a write fails", |lp| {
        if lp.state.log.is_empty() {
            return false; // the first write completes first
        }
        error = s.write(lp, b"again").err().map(|e| e.kind());
        error.is_some()
    });
    assert_eq!(net.lp().state.log, vec!["first: ok"]);
    assert_eq!(error, Some(ErrorKind::BrokenPipe));
    net.finish();
}

/// FIN then RST before the program reads: Linux reads the data, then the end of the
/// stream (the FIN marked the socket done; the reset does not turn it into an error), and
/// a later write fails with EPIPE (a reset in CLOSE_WAIT).
pub(super) fn fin_then_rst_reads_as_eof<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.send(b"goodbye");
    peer.shutdown();
    peer.reset();
    net.settle_until("the reader's last event", |lp| {
        lp.state.events.iter().any(|e| matches!(e, Ev::Eof | Ev::Error(_)))
    });
    net.quiet();
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"goodbye".to_vec()), Ev::Eof]);
    assert_eq!(s.write(net.lp(), b"too late").unwrap_err().kind(), ErrorKind::BrokenPipe);
    net.finish();
}

/// The reader saw the end; then the peer resets: a write fails with EPIPE.
pub(super) fn reset_after_eof_write_is_broken_pipe<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.shutdown();
    net.settle_until("the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    peer.reset();
    net.quiet();
    assert_eq!(net.lp().state.events, vec![Ev::Eof]);
    assert_eq!(s.write(net.lp(), b"too late").unwrap_err().kind(), ErrorKind::BrokenPipe);
    net.finish();
}

/// A write reported the reset first: Linux reports a reset once, so the reader then gets
/// the end of the stream, not the error again.
pub(super) fn read_after_a_write_saw_the_reset<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = silent_server(&mut net);
    let peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.reset();
    assert_eq!(s.write(net.lp(), b"anyone?").unwrap_err().kind(), ErrorKind::ConnectionReset);
    s.read_start(net.lp(), |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    net.settle_until("a read event", |lp| !lp.state.events.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.events, vec![Ev::Eof]);
    net.finish();
}

/// A reset reaches a program that both reads and has writes queued. On Linux the writable
/// side is served first: the queued writes get `ConnectionReset` and consume the error, so
/// the reader gets the end of the stream.
pub(super) fn reset_with_writes_queued_while_reading<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    s.read_start(net.lp(), |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    s.write_with(net.lp(), &pattern(big), log_as("big")).unwrap();
    assert!(s.write_queue_size(net.lp()).unwrap() > 0);
    peer.reset();
    net.settle_until("the write callback and a read event", |lp| {
        lp.state.log.len() == 2 && !lp.state.events.is_empty()
    });
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "big: ConnectionReset"]);
    assert_eq!(net.lp().state.events, vec![Ev::Eof]);
    net.finish();
}

/// Reading is paused and writes are queued when the peer resets: the write callbacks and
/// the paused reader hear of it.
pub(super) fn reset_while_paused_reaches_the_reader<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    s.read_start(net.lp(), |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    s.read_stop(net.lp()).unwrap();
    s.write_with(net.lp(), &pattern(big), log_as("big")).unwrap();
    peer.reset();
    net.settle_until("the write callback and a read event", |lp| {
        lp.state.log.len() == 2 && !lp.state.events.is_empty()
    });
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "big: ConnectionReset"]);
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    net.finish();
}

/// The program connected, but the listener it reached closes before accepting: the
/// connection is reset, and the program's reader hears `ConnectionReset`.
pub(super) fn unaccepted_connection_reset_when_its_listener_closes<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (addr, server) = net.listen();
    let s = TcpStream::connect(net.lp(), addr, |lp, s, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        s.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    net.settle_until("the connect callback", |lp| !lp.state.log.is_empty());
    assert_eq!(net.lp().state.log, vec!["connect: ok"]);
    net.close_server(server);
    net.settle_until("a read event", |lp| !lp.state.events.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    s.close(net.lp()).unwrap();
    net.finish();
}

/// Connections are accepted in the order they were made.
pub(super) fn accepts_in_connect_order<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = silent_server(&mut net);
    let mut peers = Vec::new();
    for i in 0..3u8 {
        let mut p = net.connect(addr).unwrap();
        p.send(&[b'0' + i]);
        peers.push(p);
    }
    net.settle_until("three accepts", |lp| lp.state.streams.len() == 3);
    let streams = net.lp().state.streams.clone();
    for (i, s) in streams.iter().enumerate() {
        s.read_start(net.lp(), move |lp, _, d| {
            lp.state.log.push(format!("{i}: {:?}", Ev::of(d)));
        })
        .unwrap();
    }
    net.settle_until("three reads", |lp| lp.state.log.len() == 3);
    let mut log = net.lp().state.log.clone();
    log.sort();
    assert_eq!(log, vec!["0: Data([48])", "1: Data([49])", "2: Data([50])"]);
    net.finish();
}

/// Closing a stream while it connects cancels the connect; the close callback runs after.
pub(super) fn close_while_connecting_cancels<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (addr, _server) = net.listen();
    let s =
        TcpStream::connect(net.lp(), addr, |lp, _, r| lp.state.log.push(format!("connect: {}", outcome(&r))))
            .unwrap();
    s.close_with(net.lp(), |lp| lp.state.log.push("closed".into())).unwrap();
    assert!(net.lp().state.log.is_empty(), "not inside close");
    net.settle_until("the close callback", |lp| lp.state.log.len() == 2);
    assert_eq!(net.lp().state.log, vec!["connect: cancelled", "closed"]);
    net.finish();
}

/// The program shut its side down; then the peer resets: the reader gets
/// `ConnectionReset` (FIN_WAIT on Linux, where a reset is ECONNRESET).
pub(super) fn reset_after_program_shutdown<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        lp.state.streams.push(s);
        s.shutdown(lp, log_as("shutdown")).unwrap();
        s.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let mut peer = net.connect(addr).unwrap();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    peer.reset();
    net.settle_until("a read event", |lp| !lp.state.events.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["shutdown: ok"]);
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    net.finish();
}

/// After a reset the connection has no peer any more: `peer_addr` is `NotConnected` on
/// Linux (getpeername in CLOSE), while `local_addr` still answers.
pub(super) fn peer_addr_after_reset<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (listener, addr) = reading_server(&mut net);
    let peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    assert_eq!(s.peer_addr(net.lp()).unwrap().ip(), addr.ip());
    assert_eq!(s.local_addr(net.lp()).unwrap(), listener.local_addr(net.lp()).unwrap());
    peer.reset();
    net.settle_until("a read error", has_error);
    assert_eq!(s.local_addr(net.lp()).unwrap(), addr, "local_addr still answers");
    assert_eq!(s.peer_addr(net.lp()).map_err(|e| e.kind()).unwrap_err(), ErrorKind::NotConnected);
    net.finish();
}

/// The program talks to itself: its own client and server, echo, half-close, end.
pub(super) fn program_talks_to_itself<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| {
        s.read_start(lp, |lp, s, d| match d {
            Ok([]) => {
                lp.state.log.push("server: eof".into());
                s.shutdown(lp, move |lp, r| {
                    lp.state.log.push(format!("server shutdown: {}", outcome(&r)));
                    s.close(lp).unwrap();
                })
                .unwrap();
            }
            Ok(b) => drop(s.write(lp, b).unwrap()),
            Err(e) => lp.state.log.push(format!("server: {:?}", e.kind())),
        })
        .unwrap();
    })
    .unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    TcpStream::connect(net.lp(), addr, |lp, c, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        c.write(lp, b"ping").unwrap();
        c.shutdown(lp, log_as("client shutdown")).unwrap();
        c.read_start(lp, |lp, c, d| {
            let ev = Ev::of(d);
            if ev == Ev::Eof {
                c.close(lp).unwrap();
            }
            lp.state.events.push(ev);
        })
        .unwrap();
    })
    .unwrap();
    net.settle_until("the client sees the end", |lp| lp.state.events.contains(&Ev::Eof));
    net.settle_until("the server's shutdown", |lp| lp.state.log.len() == 4);
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"ping".to_vec()), Ev::Eof]);
    assert_eq!(
        net.lp().state.log,
        vec!["connect: ok", "client shutdown: ok", "server: eof", "server shutdown: ok"]
    );
    net.finish();
}

/// The program's own client closes with the server's reply unread: the server's reader
/// gets `ConnectionReset`.
pub(super) fn program_closes_on_itself_with_unread_data<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let c = TcpStream::connect(net.lp(), addr, |lp, c, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        c.write(lp, b"hello").unwrap();
    })
    .unwrap();
    let server_side = accepted(&mut net, 1);
    net.settle_until("the server reads", |lp| !lp.state.events.is_empty());
    server_side.write(net.lp(), b"a reply never read").unwrap();
    let lp = net.lp();
    let (local, remote) = (server_side.local_addr(lp).unwrap(), server_side.peer_addr(lp).unwrap());
    net.delivered(local, remote); // the reply is in the client's socket, unread
    c.close(net.lp()).unwrap();
    net.settle_until("a read error", has_error);
    net.quiet();
    assert_eq!(
        coalesce(&net.lp().state.events),
        vec![Ev::Data(b"hello".to_vec()), Ev::Error(ErrorKind::ConnectionReset)]
    );
    net.finish();
}

/// The program's server closes a connection (FIN, nothing unread); the program's client
/// reads the end and writes anyway: the closed socket answers with a reset, so a later
/// write fails with EPIPE (the client is in CLOSE_WAIT).
pub(super) fn writing_toward_a_closed_program_socket_fails<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let listener = TcpListener::bind(net.lp(), addr, |lp, s| s.close(lp).unwrap()).unwrap();
    let addr = listener.local_addr(net.lp()).unwrap();
    let c = TcpStream::connect(net.lp(), addr, |lp, c, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        c.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    net.settle_until("the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    c.write_with(net.lp(), b"into the void", log_as("first")).unwrap();
    let mut error = None;
    net.settle_until("a write fails", |lp| {
        if lp.state.log.len() < 2 {
            return false; // the first write completes first
        }
        error = c.write(lp, b"again").err().map(|e| e.kind());
        error.is_some()
    });
    assert_eq!(net.lp().state.log, vec!["connect: ok", "first: ok"]);
    assert_eq!(error, Some(ErrorKind::BrokenPipe));
    net.finish();
}
