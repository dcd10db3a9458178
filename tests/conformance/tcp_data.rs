//! Bodies: reading and writing, ends of streams, resets, connects, pool cancellation.

use super::*;

// ---------------------------------------------------------------------------------------
// The bodies.
// ---------------------------------------------------------------------------------------

/// The peer sends bytes then FIN: the reader gets exactly the bytes, then `Ok(&[])` once,
/// then nothing more.
pub(super) fn eof_after_fin<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    accepted(&mut net, 1);
    peer.send(b"hello, world");
    peer.shutdown();
    net.settle_until("the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    net.quiet();
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"hello, world".to_vec()), Ev::Eof]);
    net.finish();
}

/// FIN with no data: one `Ok(&[])`, nothing else.
pub(super) fn eof_without_data<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    peer.shutdown();
    net.settle_until("the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    net.quiet();
    assert_eq!(net.lp().state.events, vec![Ev::Eof]);
    net.finish();
}

/// The peer sends bytes then resets while the program has not read them: the reader sees
/// the bytes first, then `ConnectionReset`, then nothing; a later write fails.
pub(super) fn rst_with_unread_data<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.send(b"last words");
    peer.reset();
    net.settle_until("a read error", has_error);
    net.quiet();
    assert_eq!(
        coalesce(&net.lp().state.events),
        vec![Ev::Data(b"last words".to_vec()), Ev::Error(ErrorKind::ConnectionReset)]
    );
    let write = s.write_with(net.lp(), b"too late", |_, _| panic!("a failed write has no callback"));
    assert!(write.is_err(), "a write after the reset fails: {write:?}");
    net.quiet();
    net.finish();
}

/// After the reader saw `ConnectionReset`, the next write's error kind. Linux has reported
/// the reset once (to the read), so the write gets EPIPE.
pub(super) fn write_after_read_reset_is_broken_pipe<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.reset();
    net.settle_until("a read error", has_error);
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    let kind = s.write(net.lp(), b"too late").unwrap_err().kind();
    assert_eq!(kind, ErrorKind::BrokenPipe);
    net.finish();
}

/// A reset with nothing unread: `ConnectionReset` alone.
pub(super) fn rst_without_data<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let peer = net.connect(addr).unwrap();
    accepted(&mut net, 1);
    peer.reset();
    net.settle_until("a read error", has_error);
    net.quiet();
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    net.finish();
}

/// A program that does not read learns of a reset from its next write: `ConnectionReset`,
/// and the same error for every write after.
pub(super) fn reset_noticed_by_a_write<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = silent_server(&mut net);
    let peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    peer.reset();
    net.quiet();
    let first = s.write(net.lp(), b"anyone?").unwrap_err().kind();
    let second = s.write(net.lp(), b"anyone?").unwrap_err().kind();
    assert_eq!((first, second), (ErrorKind::ConnectionReset, ErrorKind::ConnectionReset));
    net.finish();
}

/// The peer connects, sends and resets before the program accepts. Linux still hands the
/// connection to accept, and reading gives the data, then the reset.
pub(super) fn reset_before_accept<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (_listener, addr) = reading_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    peer.send(b"early");
    peer.reset();
    net.settle_until("a read error", has_error);
    net.quiet();
    assert_eq!(net.lp().state.streams.len(), 1);
    assert_eq!(
        coalesce(&net.lp().state.events),
        vec![Ev::Data(b"early".to_vec()), Ev::Error(ErrorKind::ConnectionReset)]
    );
    net.finish();
}

/// A write much larger than the window while the peer does not read: part goes, the rest
/// is queued; once the peer reads, everything arrives in order and every write callback
/// runs once, in order.
pub(super) fn partial_write_continues<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    let lp = net.lp();
    assert!(s.write_with(lp, b"first", log_as("first")).unwrap());
    assert_eq!(s.write_queue_size(lp).unwrap(), 0, "a small write goes out at once");
    assert!(!s.write_with(lp, &pattern(big), log_as("big")).unwrap(), "over the high-water mark");
    let queued = s.write_queue_size(lp).unwrap();
    assert!(queued > 0 && queued < big, "the socket took part of it: {queued} of {big} queued");
    s.write_with(lp, b"last", log_as("last")).unwrap();
    assert_eq!(s.write_queue_size(lp).unwrap(), queued + 4, "queued behind, whole");
    assert_eq!(lp.state.log, vec!["connect: ok"], "no callback inside write");
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "first: ok"], "the rest waits for the peer");
    // (The kernel may take a little more as acknowledgements come in: only "some" is exact.)
    assert!(s.write_queue_size(net.lp()).unwrap() > 4, "the rest stays queued while the peer waits");
    peer.resume();
    let total = 5 + big + 4;
    net.settle_until("the peer receives everything", |lp| {
        peer.received().len() >= total && lp.state.log.len() == 4
    });
    assert_eq!(net.lp().state.log, vec!["connect: ok", "first: ok", "big: ok", "last: ok"]);
    assert_eq!(s.write_queue_size(net.lp()).unwrap(), 0);
    let mut expected = b"first".to_vec();
    expected.extend_from_slice(&pattern(big));
    expected.extend_from_slice(b"last");
    let got = peer.received();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "bytes arrived in order");
    net.finish();
}

/// Several `write_with` calls complete in submission order, never inside `write`.
pub(super) fn write_callbacks_in_order<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (s, mut peer) = program_connects(&mut net);
    for (i, name) in ["w0", "w1", "w2", "w3", "w4"].into_iter().enumerate() {
        let lp = net.lp();
        s.write_with(lp, name.as_bytes(), log_as(name)).unwrap();
        if i == 2 {
            s.write(lp, b"-").unwrap(); // one without a callback, in the middle
        }
        assert_eq!(lp.state.log, vec!["connect: ok"], "no callback inside write");
    }
    net.settle_until("the write callbacks", |lp| lp.state.log.len() == 6);
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["connect: ok", "w0: ok", "w1: ok", "w2: ok", "w3: ok", "w4: ok"]);
    net.settle_until("the peer receives everything", |_| peer.received().len() == 11);
    assert_eq!(peer.received(), b"w0w1w2-w3w4");
    net.finish();
}

/// Writes and a shutdown issued before the connect completes are queued and go out after.
pub(super) fn writes_before_connect_are_queued<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (addr, server) = net.listen();
    let lp = net.lp();
    let s = TcpStream::connect(lp, addr, move |lp, s, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        let addrs = (s.peer_addr(lp).unwrap(), s.local_addr(lp).unwrap());
        lp.state.log.push(format!("peer is the listener: {}", addrs.0 == addr));
        lp.state.log.push(format!("local on its address: {}", addrs.1.ip() == addr.ip()));
    })
    .unwrap();
    s.write_with(lp, b"early", log_as("write")).unwrap();
    assert_eq!(s.write_queue_size(lp).unwrap(), 5, "queued while connecting");
    s.shutdown(lp, log_as("shutdown")).unwrap();
    let mut peer = net.accept(&server);
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    net.settle_until("the callbacks", |lp| lp.state.log.len() == 5);
    assert_eq!(
        net.lp().state.log,
        vec![
            "connect: ok",
            "peer is the listener: true",
            "local on its address: true",
            "write: ok",
            "shutdown: ok"
        ]
    );
    assert_eq!(peer.received(), b"early");
    assert_eq!(peer.end(), Some(End::Eof));
    net.finish();
}

/// Connecting where nothing listens: `ConnectionRefused` to the callback, from the loop.
pub(super) fn refused_connect<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.dead_addr();
    TcpStream::connect(net.lp(), addr, |lp, s, r| {
        lp.state.log.push(outcome(&r));
        s.close(lp).unwrap();
    })
    .unwrap();
    assert!(net.lp().state.log.is_empty(), "not inside connect");
    net.settle_until("the connect callback", |lp| !lp.state.log.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.log, vec!["ConnectionRefused"]);
    net.finish();
}

/// libuv's rule, and Node's: a failed connect leaves the stream inactive, so a program that
/// never closes it still ends (it used to keep `run(Default)` alive forever).
pub(super) fn failed_connect_keeps_nothing_alive<N: Net<St>>() {
    let mut net = N::new(St::default());
    let addr = net.dead_addr();
    let s = TcpStream::connect(net.lp(), addr, |lp, _, r| lp.state.log.push(outcome(&r))).unwrap();
    assert!(s.is_active(net.lp()), "connecting is activity");
    net.run_to_end().unwrap();
    assert_eq!(net.lp().state.log, vec!["ConnectionRefused"]);
    assert!(!s.is_active(net.lp()) && !s.is_closing(net.lp()), "open, and inactive");
    net.finish();
}

/// A stream is active while it reads: the end of the stream, a reset, or `read_stop` with
/// nothing queued make it inactive, and the loop ends without the program closing it.
pub(super) fn stream_activity_follows_reading<N: Net<St>>() {
    for end in [End::Eof, End::Reset] {
        let mut net = N::new(St::default());
        let (s, peer) = program_connects(&mut net);
        assert!(!s.is_active(net.lp()), "connected, not reading: nothing can happen to it");
        s.read_start(net.lp(), |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
        assert!(s.is_active(net.lp()) && net.lp().alive());
        s.read_stop(net.lp()).unwrap();
        assert!(!s.is_active(net.lp()) && !net.lp().alive(), "paused, with nothing queued");
        s.read_resume(net.lp()).unwrap();
        assert!(s.is_active(net.lp()));
        match end {
            End::Eof => peer.close(),
            End::Reset => peer.reset(),
        }
        net.run_to_end().unwrap_or_else(|e| panic!("{end:?}: {e}"));
        let last = net.lp().state.events.last().cloned();
        match end {
            End::Eof => assert_eq!(last, Some(Ev::Eof)),
            End::Reset => assert_eq!(last, Some(Ev::Error(ErrorKind::ConnectionReset))),
        }
        assert!(!s.is_active(net.lp()) && !s.is_closing(net.lp()));
        net.finish();
    }
}

/// Queued writes keep a stream active until they are gone, reading or not.
pub(super) fn queued_writes_keep_a_stream_active<N: Net<St>>() {
    let mut net = N::new(St::default());
    let big = net.big_write();
    let (s, mut peer) = program_connects(&mut net);
    peer.pause();
    s.write_with(net.lp(), &pattern(big), log_as("big")).unwrap();
    assert!(s.is_active(net.lp()), "a write is queued");
    peer.resume();
    net.settle_until("the write completes", |lp| peer.received().len() == big && lp.state.log.len() == 2);
    assert_eq!(net.lp().state.log, vec!["connect: ok", "big: ok"]);
    assert!(!s.is_active(net.lp()), "nothing queued, not reading");
    net.finish();
}

/// Binding twice on one address is `AddrInUse`, whoever holds it.
pub(super) fn address_in_use<N: Net<St>>() {
    let mut net = N::new(St::default());
    let any = net.any_addr();
    let first = TcpListener::bind(net.lp(), any, |_, _| {}).unwrap();
    let addr = first.local_addr(net.lp()).unwrap();
    assert_eq!(addr.ip(), any.ip());
    assert_ne!(addr.port(), 0, "port 0 picks a port");
    let again = TcpListener::bind(net.lp(), addr, |_, _| {}).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AddrInUse);
    let test_side = net.listen_at(addr).map(drop).unwrap_err();
    assert_eq!(test_side.kind(), ErrorKind::AddrInUse);
    let (taken, _server) = net.listen();
    let program_side = TcpListener::bind(net.lp(), taken, |_, _| {}).unwrap_err();
    assert_eq!(program_side.kind(), ErrorKind::AddrInUse);
    net.finish();
}

/// A closed listener's address can be bound again at once, even after it served a
/// connection that the program closed first (TIME_WAIT on Linux).
pub(super) fn rebind_after_close<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (listener, addr) = silent_server(&mut net);
    let mut peer = net.connect(addr).unwrap();
    let s = accepted(&mut net, 1);
    s.close(net.lp()).unwrap();
    net.settle_until("the peer sees the end", |_| peer.end().is_some());
    assert_eq!(peer.end(), Some(End::Eof));
    peer.close();
    listener.close(net.lp()).unwrap();
    let again = TcpListener::bind(net.lp(), addr, |_, _| {});
    assert!(again.is_ok(), "{again:?}");
    net.finish();
}

/// Closing a listener resets the connections waiting in its backlog; later connects are
/// refused.
pub(super) fn listener_close_resets_backlog<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (listener, addr) = silent_server(&mut net);
    let mut waiting = net.connect(addr).unwrap();
    listener.close(net.lp()).unwrap();
    net.settle_until("the waiting peer sees the end", |_| waiting.end().is_some());
    assert_eq!(waiting.end(), Some(End::Reset));
    assert!(net.lp().state.streams.is_empty(), "never accepted");
    let later = net.connect(addr).map(drop).unwrap_err();
    assert_eq!(later.kind(), ErrorKind::ConnectionRefused);
    net.finish();
}

/// Timers with equal deadlines fire in start order; earlier deadlines first.
pub(super) fn timer_ties_fire_in_start_order<N: Net<St>>() {
    let mut net = N::new(St::default());
    let lp = net.lp();
    let started = lp.now();
    for (name, timeout) in [("a", 50), ("b", 20), ("c", 50), ("d", 20), ("e", 50), ("f", 0)] {
        let t = Timer::new(lp, move |lp, t| {
            assert!(lp.now() >= started + timeout, "{name} early");
            lp.state.log.push(name.to_string());
            t.close(lp).unwrap();
        });
        t.start(lp, ms(timeout), Duration::ZERO).unwrap();
    }
    assert!(lp.state.log.is_empty(), "a zero timeout does not fire inside start");
    net.settle_until("every timer", |lp| lp.state.log.len() == 6);
    assert_eq!(net.lp().state.log, vec!["f", "b", "d", "a", "c", "e"]);
    net.finish();
}

/// With the only worker busy, a queued job is cancelled: its work never runs and its
/// callback gets a cancellation, from the loop; the busy one cannot be cancelled.
pub(super) fn pool_cancellation<N: Net<St>>() {
    let mut net = N::new(St::default());
    let (job, mut gate) = net.blocking_job();
    let busy = net
        .lp()
        .queue_work(
            move || {
                job();
                7u32
            },
            |lp, r| {
                let result = match &r {
                    Ok(v) => v.to_string(),
                    Err(_) => outcome(&r),
                };
                lp.state.log.push(format!("busy: {result}"));
            },
        )
        .unwrap();
    net.wait_job_started(&mut gate);
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = ran.clone();
    let lp = net.lp();
    let queued = lp
        .queue_work(
            move || ran2.store(true, Ordering::SeqCst),
            |lp, r| lp.state.log.push(format!("queued: {}", outcome(&r))),
        )
        .unwrap();
    lp.cancel_work(queued).unwrap();
    assert!(lp.state.log.is_empty(), "no callback inside cancel");
    assert_eq!(lp.cancel_work(busy).unwrap_err().kind(), ErrorKind::ResourceBusy);
    assert!(lp.cancel_work(queued).is_err(), "cancelled twice");
    net.release_job(gate);
    net.settle_until("both callbacks", |lp| lp.state.log.len() == 2);
    net.quiet();
    let mut log = net.lp().state.log.clone();
    log.sort();
    assert_eq!(log, vec!["busy: 7", "queued: cancelled"]);
    assert!(!ran.load(Ordering::SeqCst), "cancelled work never runs");
    assert!(net.lp().cancel_work(busy).is_err(), "a completed request cannot be cancelled");
    net.finish();
}
