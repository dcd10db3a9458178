//! Unix domain sockets, what only the real loop has: peer credentials, abstract names, socket
//! files on disk (stale ones, the unlink option, `sun_path`'s limit), and std interop; plus
//! the simulator's model of bound paths. Their stream behaviour is in the conformance suite
//! (`tests/conformance/unix.rs`), on both drivers.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net as std_unix;

use evloop::sim::Sim;
use evloop::{HandleKind, ListenOptions, Loop, RunMode, UnixListener, UnixStream};

use common::{time_limit, TempDir};

/// Our own effective uid and gid, from `/proc/self/status` (`Uid:`/`Gid:` real, effective, ...).
fn own_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = |key: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    (effective("Uid:"), effective("Gid:"))
}

#[test]
fn peer_cred_names_our_own_process_on_both_ends() {
    let dir = TempDir::new("cred");
    let path = dir.join("cred.sock");
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 10);
    let listener = UnixListener::bind(&mut lp, &path, |lp, s| {
        let cred = s.peer_cred(lp).unwrap();
        lp.state.push(("accepted", cred));
        s.close(lp).unwrap();
    })
    .unwrap();
    UnixStream::connect(&mut lp, &path, move |lp, c, r| {
        r.unwrap();
        let cred = c.peer_cred(lp).unwrap();
        lp.state.push(("connected", cred));
        c.close(lp).unwrap();
        listener.close(lp).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let (uid, gid) = own_ids();
    assert_eq!(lp.state.len(), 2);
    for (side, cred) in &lp.state {
        assert_eq!((cred.pid as u32, cred.uid, cred.gid), (std::process::id(), uid, gid), "{side}");
    }
}

#[test]
fn a_simulated_stream_has_no_peer_credentials() {
    let mut sim = Sim::new(1, Vec::new());
    UnixListener::bind(&mut sim, "/sim/cred.sock", |lp, s| lp.state.push(s)).unwrap();
    let _peer = sim.connect_unix("/sim/cred.sock").unwrap();
    sim.run_until_idle().unwrap();
    let s = sim.state[0];
    assert_eq!(s.peer_cred(&sim).unwrap_err().kind(), ErrorKind::Unsupported);
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_names_bind_connect_and_leave_no_file() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("evloop-test-abstract-{}", std::process::id());
    let addr = std_unix::SocketAddr::from_abstract_name(&name).unwrap();
    let mut lp = Loop::with_state(Vec::<u8>::new()).unwrap();
    time_limit(&mut lp, 10);
    let listener = UnixListener::bind_addr(&mut lp, &addr, |lp, s| {
        s.read_start(lp, move |lp, s, d| match d {
            Ok([]) => s.close(lp).unwrap(),
            Ok(bytes) => lp.state.extend_from_slice(bytes),
            Err(e) => panic!("{e}"),
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(listener.local_addr(&lp).unwrap().as_abstract_name(), Some(name.as_bytes()));
    // A second bind of the same name: in use.
    let err = UnixListener::bind_addr(&mut lp, &addr, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&name), "{err}");
    UnixStream::connect_addr(&mut lp, &addr, move |lp, c, r| {
        r.unwrap();
        c.write(lp, b"abstract").unwrap();
        c.shutdown(lp, move |lp, _| {
            c.close(lp).unwrap();
            listener.close(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, b"abstract");
}

#[test]
fn a_stale_socket_file_is_addr_in_use_naming_the_path_until_unlink_existing() {
    let dir = TempDir::new("stale");
    let path = dir.join("stale.sock");
    drop(std_unix::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a closed std listener leaves its socket file");
    let mut lp = Loop::new().unwrap();
    let err = UnixListener::bind(&mut lp, &path, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()) && msg.contains("unlink_existing"), "{msg}");
    let listener = ListenOptions::new().unlink_existing(true).bind_unix(&mut lp, &path, |_, _| {}).unwrap();
    assert_eq!(listener.local_addr(&lp).unwrap().as_pathname(), Some(path.as_path()));
    // The new socket file is live: a std client connects.
    std_unix::UnixStream::connect(&path).unwrap();
}

#[test]
fn unlink_existing_never_removes_a_file_that_is_not_a_socket() {
    let dir = TempDir::new("notsock");
    let path = dir.join("data.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let mut lp = Loop::new().unwrap();
    let err = ListenOptions::new().unlink_existing(true).bind_unix(&mut lp, &path, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn binding_a_path_twice_is_addr_in_use() {
    let dir = TempDir::new("twice");
    let path = dir.join("twice.sock");
    let mut lp = Loop::new().unwrap();
    UnixListener::bind(&mut lp, &path, |_, _| {}).unwrap();
    let err = UnixListener::bind(&mut lp, &path, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[test]
fn a_path_longer_than_sun_path_is_invalid_input() {
    let mut lp = Loop::new().unwrap();
    let long = format!("/tmp/{}", "x".repeat(103)); // 108 bytes: one more than fits
    let err = UnixListener::bind(&mut lp, &long, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("too long") && err.to_string().contains("107"), "{err}");
    let err = UnixStream::connect(&mut lp, &long, |_, _, _| panic!("no callback")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // 107 bytes fit (the bind fails only because the directory does not exist).
    let fits = format!("/nonexistent-evloop/{}", "x".repeat(107 - 20));
    assert_eq!(fits.len(), 107);
    let err = UnixListener::bind(&mut lp, &fits, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn std_streams_and_listeners_move_in_and_out() {
    let dir = TempDir::new("std");
    let path = dir.join("std.sock");
    let std_listener = std_unix::UnixListener::bind(&path).unwrap();
    let mut lp = Loop::with_state(Vec::<u8>::new()).unwrap();
    time_limit(&mut lp, 10);
    let listener = UnixListener::from_std(&mut lp, std_listener, |lp, s| {
        assert_eq!(s.handle().kind(lp).unwrap(), HandleKind::UnixStream);
        s.read_start(lp, |lp, s, d| match d {
            Ok([]) => s.close(lp).unwrap(),
            Ok(bytes) => lp.state.extend_from_slice(bytes),
            Err(e) => panic!("{e}"),
        })
        .unwrap();
    })
    .unwrap();
    let mut client = std_unix::UnixStream::connect(&path).unwrap();
    client.write_all(b"adopted").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    while lp.state.len() < 7 {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(lp.state, b"adopted");
    // The listener goes back to std, still listening and blocking again.
    let back = listener.into_std(&mut lp).unwrap();
    assert!(listener.is_closing(&lp));
    let _late = std_unix::UnixStream::connect(&path).unwrap();
    let (accepted, _) = back.accept().unwrap();

    // A stream moves in, unread input stays in the kernel, and it moves out again.
    let (ours, mut theirs) = std_unix::UnixStream::pair().unwrap();
    theirs.write_all(b"kept").unwrap();
    let stream = UnixStream::from_std(&mut lp, ours).unwrap();
    stream.write(&mut lp, b"sent").unwrap();
    let ours = stream.into_std(&mut lp).unwrap();
    let mut buf = [0; 4];
    (&ours).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    theirs.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"sent");
    drop(accepted);
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn the_simulator_keeps_a_bound_path_until_a_bind_unlinks_it() {
    let mut sim = Sim::new(1, Vec::new());
    let l = UnixListener::bind(&mut sim, "/sim/app.sock", |_, _| {}).unwrap();
    l.close(&mut sim).unwrap();
    sim.run_until_idle().unwrap();
    let err = UnixListener::bind(&mut sim, "/sim/app.sock", |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains("/sim/app.sock"), "{err}");
    assert_eq!(sim.connect_unix("/sim/app.sock").unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let l = ListenOptions::new()
        .unlink_existing(true)
        .bind_unix(&mut sim, "/sim/app.sock", |lp, s| lp.state.push(s))
        .unwrap();
    assert_eq!(l.local_addr(&sim).unwrap().as_pathname(), Some("/sim/app.sock".as_ref()));
    let _peer = sim.connect_unix("/sim/app.sock").unwrap();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.len(), 1);
    let s = sim.state[0];
    assert_eq!(s.local_addr(&sim).unwrap().as_pathname(), Some("/sim/app.sock".as_ref()));
    assert!(s.peer_addr(&sim).unwrap().is_unnamed());
}

#[cfg(target_os = "linux")]
#[test]
fn the_simulator_serves_abstract_names_and_frees_them_with_their_listener() {
    use std::os::linux::net::SocketAddrExt;
    let addr = std_unix::SocketAddr::from_abstract_name("sim-abstract").unwrap();
    let mut sim = Sim::new(1, Vec::<u8>::new());
    let l = UnixListener::bind_addr(&mut sim, &addr, |lp, s| {
        s.read_start(lp, |lp, _, d| lp.state.extend_from_slice(d.unwrap())).unwrap();
    })
    .unwrap();
    assert_eq!(UnixListener::bind_addr(&mut sim, &addr, |_, _| {}).unwrap_err().kind(), ErrorKind::AddrInUse);
    UnixStream::connect_addr(&mut sim, &addr, |lp, c, r| {
        r.unwrap();
        c.write(lp, b"no file").unwrap();
    })
    .unwrap();
    sim.run_until_idle().unwrap();
    sim.advance(std::time::Duration::from_millis(10)).unwrap();
    assert_eq!(sim.state, b"no file");
    // An abstract name is free again once its listener closes (no file stays behind).
    l.close(&mut sim).unwrap();
    sim.run_until_idle().unwrap();
    UnixListener::bind_addr(&mut sim, &addr, |_, _| {}).unwrap();
}

#[test]
fn a_program_connects_to_a_fake_unix_listener_in_the_simulator() {
    let mut sim = Sim::new(1, Vec::<u8>::new());
    let fake = sim.listen_unix("/sim/fake.sock").unwrap();
    let c = UnixStream::connect(&mut sim, "/sim/fake.sock", |lp, c, r| {
        r.unwrap();
        c.write(lp, b"to the fake").unwrap();
        c.read_start(lp, |lp, _, d| lp.state.extend_from_slice(d.unwrap())).unwrap();
    })
    .unwrap();
    sim.run_until_idle().unwrap();
    let peer = fake.accept().expect("the program's connect reached the fake listener");
    sim.advance(std::time::Duration::from_millis(10)).unwrap();
    assert_eq!(peer.recv(), b"to the fake");
    peer.send(b"from the fake");
    sim.advance(std::time::Duration::from_millis(10)).unwrap();
    assert_eq!(sim.state, b"from the fake");
    assert_eq!(c.peer_addr(&sim).unwrap().as_pathname(), Some("/sim/fake.sock".as_ref()));
}
