//! Name resolution, and connecting by name.

mod common;

use common::{any_port, time_limit};
use evloop::{dns, Loop, RunMode, TcpListener, TcpStream};

#[test]
fn localhost_resolves_to_loopback_addresses() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    dns::resolve(&mut lp, "localhost", 4242, |lp, r| lp.state = r.unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(!lp.state.is_empty());
    assert!(lp.state.iter().all(|a| a.ip().is_loopback() && a.port() == 4242), "{:?}", lp.state);
}

/// The error getaddrinfo gives for a name under the reserved `.invalid` TLD (RFC 6761),
/// as the resolver passes it on: std's kind for getaddrinfo failures (`Uncategorized`, not
/// nameable on stable; `Other` accepted should std move it there), and the message naming
/// the host and getaddrinfo's reason. The reasons: the name does not exist (EAI_NONAME, what
/// this machine gives, with or without a reachable nameserver), it has no address
/// (EAI_NODATA), or no nameserver could be asked (EAI_AGAIN, on a machine with none).
fn assert_unresolvable(e: &std::io::Error) {
    let kind = format!("{:?}", e.kind());
    assert!(kind == "Uncategorized" || e.kind() == std::io::ErrorKind::Other, "kind {kind}: {e}");
    let message = e.to_string();
    let reason = message
        .strip_prefix("resolve no-such-host.invalid: failed to lookup address information: ")
        .unwrap_or_else(|| panic!("not a getaddrinfo failure for the name: {message}"));
    let reasons = [
        "Name or service not known",
        "No address associated with hostname",
        "Temporary failure in name resolution",
    ];
    assert!(reasons.contains(&reason), "unexpected getaddrinfo reason: {message}");
}

#[test]
fn a_name_that_does_not_exist_is_an_error() {
    let mut lp = Loop::with_state(None).unwrap();
    time_limit(&mut lp, 30);
    dns::resolve(&mut lp, "no-such-host.invalid", 80, |lp, r| lp.state = Some(r)).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_unresolvable(&lp.state.unwrap().unwrap_err());
}

#[test]
fn connect_accepts_host_port_and_finds_a_server_on_127_0_0_1() {
    // localhost may resolve to ::1 first; nothing listens there, so connect must fall back.
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    time_limit(&mut lp, 30);
    let server = TcpListener::bind(&mut lp, any_port(), |lp, s| {
        s.read_start(lp, |lp, s, d| {
            lp.state.extend_from_slice(d.unwrap());
            s.close(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    let port = server.local_addr(&lp).unwrap().port();
    TcpStream::connect(&mut lp, format!("localhost:{port}"), move |lp, s, r| {
        r.unwrap();
        s.write(lp, b"by name").unwrap();
        s.shutdown(lp, move |lp, _| {
            s.close(lp).unwrap();
            server.close(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, b"by name");
}

#[test]
fn connect_to_a_name_that_does_not_resolve_reports_it() {
    let mut lp = Loop::with_state(None).unwrap();
    time_limit(&mut lp, 30);
    TcpStream::connect(&mut lp, "no-such-host.invalid:80", |lp, s, r| {
        lp.state = Some(r);
        s.close(lp).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    // The resolver's own error, not some later failure of a connect that should not happen.
    assert_unresolvable(&lp.state.unwrap().unwrap_err());
}

#[test]
fn malformed_addresses_fail_at_once() {
    let mut lp = Loop::new().unwrap();
    for bad in ["localhost", "localhost:port", ":80"] {
        let e = TcpStream::connect(&mut lp, bad, |_, _, _| panic!("no callback")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
    assert_eq!(lp.handle_count(), 0);
}
