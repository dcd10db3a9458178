//! Adopted sockets: `from_std` takes over a std listener or stream, `into_std` hands it back.

mod common;

use std::io::{self, Read, Write};
use std::net;
use std::time::Duration;

use evloop::sim::Sim;
use evloop::{Loop, RunMode, TcpListener, TcpStream, Timer};
use socket2::{Domain, SockRef, Socket, Type};

use common::{pattern, time_limit};

/// A connected pair of std streams: (client, accepted).
fn std_pair() -> (net::TcpStream, net::TcpStream) {
    let listener = net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (client, accepted)
}

fn is_nonblocking<T: std::os::fd::AsFd>(s: &T) -> bool {
    SockRef::from(s).nonblocking().unwrap()
}

#[test]
fn an_adopted_listener_accepts() {
    let std_listener = net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut lp = Loop::with_state(Vec::<u8>::new()).unwrap();
    time_limit(&mut lp, 10);
    let listener = TcpListener::from_std(&mut lp, std_listener, |lp, stream| {
        stream
            .read_start(lp, |lp, stream, data| match data {
                Ok(bytes) if !bytes.is_empty() => lp.state.extend_from_slice(bytes),
                _ => stream.close(lp).unwrap(),
            })
            .unwrap();
    })
    .unwrap();
    assert_eq!(listener.local_addr(&lp).unwrap(), addr);
    let client = std::thread::spawn(move || {
        let mut c = net::TcpStream::connect(addr).unwrap();
        c.write_all(b"through evloop").unwrap();
    });
    while lp.state.len() < 14 {
        lp.run(RunMode::Once).unwrap();
    }
    client.join().unwrap();
    assert_eq!(lp.state, b"through evloop");
    listener.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_socket_that_is_not_listening_is_refused() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<net::SocketAddr>().unwrap().into()).unwrap();
    let mut lp = Loop::new().unwrap();
    let err = TcpListener::from_std(&mut lp, socket.into(), |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not listening"), "{err}");
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn an_adopted_stream_echoes() {
    let (mut client, accepted) = std_pair();
    let mut lp = Loop::new().unwrap();
    time_limit(&mut lp, 10);
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    stream
        .read_start(&mut lp, |lp, stream, data| match data {
            Ok(bytes) if !bytes.is_empty() => {
                stream.write(lp, bytes).unwrap();
            }
            Ok(_) => stream.shutdown(lp, move |lp, _| stream.close(lp).unwrap()).unwrap(),
            Err(e) => panic!("read failed: {e}"),
        })
        .unwrap();
    let sent = pattern(300_000);
    let expected = sent.clone();
    let peer = std::thread::spawn(move || {
        let mut reader = client.try_clone().unwrap();
        let echo = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            got
        });
        client.write_all(&sent).unwrap();
        client.shutdown(net::Shutdown::Write).unwrap();
        echo.join().unwrap()
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(peer.join().unwrap(), expected);
}

#[test]
fn a_stream_that_is_not_connected_is_refused() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let mut lp = Loop::new().unwrap();
    let err = TcpStream::from_std(&mut lp, socket.into()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert_eq!(lp.handle_count(), 0);
}

/// What a loop collects before it hands the connection on.
#[derive(Default)]
struct Mover {
    got: Vec<u8>,
    /// Hand the stream back once this many bytes have arrived (0: never).
    hand_over_after: usize,
    handed: Option<net::TcpStream>,
    ended: bool,
}

fn read_into_state(lp: &mut Loop<Mover>, stream: TcpStream, data: io::Result<&[u8]>) {
    match data {
        Ok(bytes) if !bytes.is_empty() => {
            lp.state.got.extend_from_slice(bytes);
            if lp.state.hand_over_after > 0 && lp.state.got.len() >= lp.state.hand_over_after {
                lp.state.handed = Some(stream.into_std(lp).unwrap());
                lp.stop();
            }
        }
        Ok(_) => {
            lp.state.ended = true;
            stream.close(lp).unwrap();
        }
        Err(e) => panic!("read failed: {e}"),
    }
}

#[test]
fn a_connection_moves_between_loops_without_losing_a_byte() {
    const TOTAL: usize = 2_000_000;
    let (mut client, accepted) = std_pair();
    let sent = pattern(TOTAL);
    let expected = sent.clone();
    // The client keeps talking, in small pieces, all through the move.
    let talker = std::thread::spawn(move || {
        for (i, chunk) in sent.chunks(4096).enumerate() {
            client.write_all(chunk).unwrap();
            if i % 32 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        client.shutdown(net::Shutdown::Write).unwrap();
        client
    });

    let mut a = Loop::with_state(Mover { hand_over_after: 100_000, ..Default::default() }).unwrap();
    time_limit(&mut a, 20);
    TcpStream::from_std(&mut a, accepted).unwrap().read_start(&mut a, read_into_state).unwrap();
    a.run(RunMode::Default).unwrap();
    let moved = a.state.handed.take().expect("loop A handed the stream over");
    assert!(a.state.got.len() < TOTAL, "the move happened while the client was still talking");
    assert!(!a.run(RunMode::Default).unwrap(), "loop A holds nothing after the move");
    assert_eq!(a.handle_count(), 1, "only the time limit is left");

    let mut b = Loop::with_state(Mover::default()).unwrap();
    time_limit(&mut b, 20);
    TcpStream::from_std(&mut b, moved).unwrap().read_start(&mut b, read_into_state).unwrap();
    b.run(RunMode::Default).unwrap();
    assert!(b.state.ended);
    drop(talker.join().unwrap());

    let mut all = std::mem::take(&mut a.state.got);
    all.extend_from_slice(&b.state.got);
    assert_eq!(all.len(), TOTAL);
    assert!(all == expected, "bytes lost or reordered in the move");
}

#[test]
fn into_std_is_refused_while_writes_are_queued() {
    let (client, accepted) = std_pair();
    let mut lp = Loop::new().unwrap();
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    // The client does not read: most of this stays queued.
    stream.write(&mut lp, &pattern(16 << 20)).unwrap();
    assert!(stream.write_queue_size(&lp).unwrap() > 0);
    let err = stream.into_std(&mut lp).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("writes are queued"), "{err}");
    assert!(!stream.is_closing(&lp), "a refused hand-back leaves the stream open");
    stream.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    drop(client);
}

#[test]
fn into_std_is_refused_while_connecting_or_shutting_down() {
    let std_listener = net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let mut lp = Loop::new().unwrap();
    time_limit(&mut lp, 10);
    // A name is resolved on the pool first: certainly still connecting here.
    let connecting = TcpStream::connect(&mut lp, format!("localhost:{port}"), |_, _, _| {}).unwrap();
    let err = connecting.into_std(&mut lp).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("connect is in flight"), "{err}");

    // A shutdown waiting behind queued writes (the client does not read).
    let (_client, accepted) = std_pair();
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    stream.write(&mut lp, &pattern(16 << 20)).unwrap();
    stream.shutdown(&mut lp, |_, _| {}).unwrap();
    let err = stream.into_std(&mut lp).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("shutdown is in flight"), "{err}");
    connecting.close(&mut lp).unwrap();
    stream.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_shutdown_already_sent_comes_back_half_closed() {
    let (mut client, accepted) = std_pair();
    let mut lp = Loop::with_state(None).unwrap();
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    stream.write(&mut lp, b"bye").unwrap();
    stream.shutdown(&mut lp, |lp, result| lp.state = Some(result.is_ok())).unwrap();
    let mut back = stream.into_std(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, Some(true), "the shutdown's callback ran, with its outcome");
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
    // The write side is shut; the read side still works, now blocking.
    client.write_all(b"still open").unwrap();
    let mut buf = [0; 10];
    back.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still open");
}

#[test]
fn adopted_sockets_are_nonblocking_and_come_back_blocking() {
    let mut lp = Loop::new().unwrap();
    let (_client, accepted) = std_pair();
    // A duplicate shares the open file description, so it sees the mode evloop sets.
    let probe = accepted.try_clone().unwrap();
    assert!(!is_nonblocking(&probe));
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    assert!(is_nonblocking(&probe));
    let back = stream.into_std(&mut lp).unwrap();
    assert!(!is_nonblocking(&back));

    let std_listener = net::TcpListener::bind("127.0.0.1:0").unwrap();
    let probe = std_listener.try_clone().unwrap();
    let listener = TcpListener::from_std(&mut lp, std_listener, |_, _| {}).unwrap();
    assert!(is_nonblocking(&probe));
    let back = listener.into_std(&mut lp).unwrap();
    assert!(!is_nonblocking(&back));
    assert!(listener.is_closing(&lp));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn the_simulator_refuses_real_sockets() {
    let mut sim = Sim::new(1, ());
    let (_client, accepted) = std_pair();
    let err = TcpStream::from_std(&mut sim, accepted).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("simulated"), "{err}");
    let err = TcpListener::from_std(&mut sim, net::TcpListener::bind("127.0.0.1:0").unwrap(), |_, _| {})
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);

    // Nor can it hand an in-memory socket back; the handle stays open.
    let listener = TcpListener::bind(&mut sim, "10.0.0.1:80", |_, _| {}).unwrap();
    let err = listener.into_std(&mut sim).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(!listener.is_closing(&sim));
}

#[test]
fn a_stream_handed_back_is_out_of_the_poller() {
    let (mut client, accepted) = std_pair();
    let mut lp = Loop::new().unwrap();
    let stream = TcpStream::from_std(&mut lp, accepted).unwrap();
    stream.read_start(&mut lp, |_, _, _| panic!("nothing arrives before the hand-back")).unwrap();
    lp.run(RunMode::NoWait).unwrap(); // registers the socket with the poller
    let _back = stream.into_std(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap(); // frees the handle
    let events = lp.metrics().io_events;
    client.write_all(b"for whoever holds it now").unwrap();
    // Poll for 50 ms: a socket still registered would report this input (counted, dropped).
    Timer::new(&mut lp, |_, _| {}).start(&mut lp, Duration::from_millis(50), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.metrics().io_events, events, "loop A still polls the socket it handed back");
}
