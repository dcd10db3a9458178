//! UdpSocket on the real loop, for what only a real kernel shows: ICMP errors, the largest
//! datagram and the one past it, broadcast and multicast, address reuse and IPv6-only; and
//! the udp_echo example against real clients (nc, Python). The behaviour both drivers share
//! is in tests/conformance/udp.rs, the simulator's own in tests/udp_sim.rs.

mod common;

use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdp};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{any_port, example_path, have_client, pattern, start_example};
use evloop::{Loop, RunMode, Timer, UdpOptions, UdpSocket};

/// One receive callback: the bytes, the sender and the truncation flag, or the error kind.
type Got = Result<(Vec<u8>, SocketAddr, bool), ErrorKind>;

fn recording(lp: &mut Loop<Vec<Got>>, addr: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind(lp, addr).unwrap();
    s.recv_start(lp, |lp, _, d| {
        lp.state.push(d.map(|(b, from, f)| (b.to_vec(), from, f.truncated())).map_err(|e| e.kind()))
    })
    .unwrap();
    s
}

/// Runs the loop until `cond` holds, each wait bounded by a 1 ms timer; fails after 10 s.
fn run_until<S>(lp: &mut Loop<S>, what: &str, mut cond: impl FnMut(&mut Loop<S>) -> bool) {
    let guard = Timer::new(lp, |_, _| {});
    guard.start(lp, Duration::from_millis(1), Duration::from_millis(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond(lp) {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        lp.run(RunMode::Once).unwrap();
    }
    guard.close(lp).unwrap();
}

fn std_peer() -> StdUdp {
    let s = StdUdp::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn icmp_port_unreachable_reaches_the_callback_and_reception_continues() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let s = recording(&mut lp, any_port());
    // A port where nothing listens: bound, read back, closed.
    let dead = std_peer().local_addr().unwrap();
    s.connect(&mut lp, dead).unwrap();
    s.send(&mut lp, b"anyone?").unwrap();
    run_until(&mut lp, "the ICMP error", |lp| !lp.state.is_empty());
    assert_eq!(lp.state, [Err(ErrorKind::ConnectionRefused)]);
    assert!(s.is_receiving(&lp), "an error does not stop reception");
    // Something binds there now and answers: its datagram arrives.
    let late = StdUdp::bind(dead).unwrap();
    late.send_to(b"here", s.local_addr(&lp).unwrap()).unwrap();
    run_until(&mut lp, "the datagram after the error", |lp| lp.state.len() >= 2);
    assert_eq!(lp.state[1], Ok((b"here".to_vec(), dead, false)));
}

#[test]
fn the_largest_datagram_arrives_whole_both_ways() {
    const MAX: usize = 65_507;
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let s = recording(&mut lp, any_port());
    let peer = std_peer();
    peer.send_to(&pattern(MAX), s.local_addr(&lp).unwrap()).unwrap();
    run_until(&mut lp, "the datagram", |lp| !lp.state.is_empty());
    assert_eq!(lp.state, [Ok((pattern(MAX), peer.local_addr().unwrap(), false))]);
    s.send_to(&mut lp, &pattern(MAX), peer.local_addr().unwrap()).unwrap();
    let mut buf = vec![0; 70_000];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &pattern(MAX)[..]);
}

#[test]
fn one_byte_past_the_largest_is_emsgsize_from_the_call() {
    const EMSGSIZE: i32 = 90;
    let mut lp = Loop::with_state(Vec::<String>::new()).unwrap();
    let s = UdpSocket::bind(&mut lp, any_port()).unwrap();
    let to = std_peer().local_addr().unwrap();
    let err = s.send_to(&mut lp, &pattern(65_508), to).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EMSGSIZE), "{err}");
    let err =
        s.send_to_with(&mut lp, &pattern(65_508), to, |lp, r| lp.state.push(format!("{r:?}"))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EMSGSIZE));
    assert_eq!(s.send_queue_count(&lp).unwrap(), 0, "nothing queued");
    lp.run(RunMode::Default).unwrap();
    assert!(lp.state.is_empty(), "the callback of a refused send is never called");
}

#[test]
fn broadcast_needs_the_flag() {
    let mut lp = Loop::new().unwrap();
    let s = UdpSocket::bind(&mut lp, "0.0.0.0:0").unwrap();
    let to = SocketAddr::from((Ipv4Addr::BROADCAST, 9));
    let err = s.send_to(&mut lp, b"all", to).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    s.set_broadcast(&mut lp, true).unwrap();
    assert!(s.broadcast(&lp).unwrap());
    // With the flag the kernel takes it (or, on a machine without a route for it, refuses
    // it for that reason: never for the missing flag).
    if let Err(e) = s.send_to(&mut lp, b"all", to) {
        assert_ne!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    }
}

#[test]
fn multicast_join_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 42, 99);
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let r = recording(&mut lp, "0.0.0.0:0".parse().unwrap());
    if let Err(e) = r.join_multicast_v4(&mut lp, group, Ipv4Addr::LOCALHOST) {
        eprintln!("SKIPPED: multicast_join_on_loopback: this machine refuses a group on 127.0.0.1: {e}");
        return;
    }
    let port = r.local_addr(&lp).unwrap().port();
    let sender = StdUdp::bind("127.0.0.1:0").unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let sent = socket2::SockRef::from(&sender)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .and_then(|()| sender.send_to(b"group", (group, port)));
    if let Err(e) = sent {
        eprintln!("SKIPPED: multicast_join_on_loopback: no multicast route on loopback: {e}");
        return;
    }
    // Loopback delivers inside the sender's call: a short bounded look is enough.
    let deadline = Instant::now() + Duration::from_secs(1);
    while lp.state.is_empty() && Instant::now() < deadline {
        lp.run(RunMode::NoWait).unwrap();
    }
    if lp.state.is_empty() {
        eprintln!("SKIPPED: multicast_join_on_loopback: the kernel did not loop the group's datagram back");
        return;
    }
    assert_eq!(lp.state, [Ok((b"group".to_vec(), sender.local_addr().unwrap(), false))]);
    r.leave_multicast_v4(&mut lp, group, Ipv4Addr::LOCALHOST).unwrap();
    assert!(r.leave_multicast_v4(&mut lp, group, Ipv4Addr::LOCALHOST).is_err(), "not a member any more");
}

#[test]
fn binding_twice_needs_reuse_on_both() {
    let mut lp = Loop::new().unwrap();
    let a = UdpSocket::bind(&mut lp, any_port()).unwrap();
    let addr = a.local_addr(&lp).unwrap();
    assert_eq!(UdpSocket::bind(&mut lp, addr).unwrap_err().kind(), ErrorKind::AddrInUse);
    assert_eq!(
        UdpOptions::new().reuse_port(true).bind(&mut lp, addr).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    for opts in [UdpOptions::new().reuse_address(true), UdpOptions::new().reuse_port(true)] {
        let first = opts.bind(&mut lp, any_port()).unwrap();
        let addr = first.local_addr(&lp).unwrap();
        let second = opts.bind(&mut lp, addr).unwrap();
        assert_eq!(second.local_addr(&lp).unwrap(), addr, "{opts:?}");
    }
}

#[test]
fn ipv6_only_leaves_the_ipv4_port_free() {
    let mut lp = Loop::new().unwrap();
    let v6 = match UdpOptions::new().only_v6(true).bind(&mut lp, "[::]:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: ipv6_only_leaves_the_ipv4_port_free: no IPv6 here: {e}");
            return;
        }
    };
    let port = v6.local_addr(&lp).unwrap().port();
    // IPv6-only: the same port on IPv4 is free.
    UdpSocket::bind(&mut lp, ("0.0.0.0", port)).unwrap();
    // Dual-stack: it is not.
    let dual = UdpOptions::new().only_v6(false).bind(&mut lp, "[::]:0").unwrap();
    let port = dual.local_addr(&lp).unwrap().port();
    assert_eq!(UdpSocket::bind(&mut lp, ("0.0.0.0", port)).unwrap_err().kind(), ErrorKind::AddrInUse);
}

#[test]
fn both_backends_receive_a_burst_beyond_the_per_wakeup_cap() {
    for backend in common::backends() {
        let mut lp = Loop::builder().backend(backend).state(Vec::new()).build().unwrap();
        let s = recording(&mut lp, any_port());
        let to = s.local_addr(&lp).unwrap();
        let peer = std_peer();
        for i in 0..200u32 {
            peer.send_to(&i.to_be_bytes(), to).unwrap();
        }
        run_until(&mut lp, "200 datagrams", |lp| lp.state.len() >= 200);
        let got: Vec<u32> =
            lp.state.iter().map(|g| u32::from_be_bytes(g.clone().unwrap().0.try_into().unwrap())).collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "{backend:?}");
    }
}

// ---- the udp_echo example against real clients ----

fn udp_echo() -> common::Example {
    let mut cmd = Command::new(example_path("udp_echo"));
    cmd.arg("127.0.0.1:0");
    start_example(cmd)
}

#[test]
fn udp_echo_answers_nc() {
    if !have_client("udp_echo_answers_nc", "nc") {
        return;
    }
    let server = udp_echo();
    let script =
        format!("printf 'hello over udp' | timeout 10 nc -u -w1 {} {}", server.addr.ip(), server.addr.port());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over udp", "{out:?}");
}

#[test]
fn udp_echo_answers_python_with_the_largest_and_the_empty_datagram() {
    if !have_client("udp_echo_answers_python_with_the_largest_and_the_empty_datagram", "python3") {
        return;
    }
    let server = udp_echo();
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(10)\n\
         a = ('127.0.0.1', {port})\n\
         s.sendto(b'', a)\n\
         d, f = s.recvfrom(70000)\n\
         assert d == b'' and f == a, (d, f)\n\
         p = bytes(i % 251 for i in range(65507))\n\
         s.sendto(p, a)\n\
         d, f = s.recvfrom(70000)\n\
         assert d == p, len(d)\n\
         print('ok', len(d))\n",
        port = server.addr.port()
    );
    let out = Command::new("timeout").args(["20", "python3", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 65507\n");
}

#[test]
fn udp_echo_exits_zero_on_sigterm() -> io::Result<()> {
    let mut server = udp_echo();
    let peer = std_peer();
    peer.send_to(b"before", server.addr)?;
    let mut buf = [0; 16];
    assert_eq!(peer.recv(&mut buf)?, 6);
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait()? {
            assert!(status.success(), "{status:?}");
            return Ok(());
        }
        assert!(Instant::now() < deadline, "udp_echo did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    }
}
