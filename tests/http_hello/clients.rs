//! curl, nc and wrk against the server; two threads on one port; SIGTERM.

use super::*;

#[test]
fn curl_reuses_the_connection_and_sees_404() {
    if !have_client("curl_reuses_the_connection_and_sees_404", "curl") {
        return;
    }
    let server = Server::start();
    let url = server.url("/");
    let out = run_client(Command::new("curl").args(["-sv", "--max-time", "10", &url, &url]), b"", LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!Hello, World!");
    // curl 7 says "Re-using", curl 8 "Reusing".
    assert!(
        stderr.contains("Re-using existing connection") || stderr.contains("Reusing existing"),
        "the connection was not reused: {stderr}"
    );

    let missing = server.url("/missing");
    let args = ["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", &missing];
    let out = run_client(Command::new("curl").args(args), b"", LIMIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

#[test]
fn nc_gets_400_for_garbage_and_the_server_closes() {
    if !have_client("nc_gets_400_for_garbage_and_the_server_closes", "nc") {
        return;
    }
    let server = Server::start();
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    // netcat-openbsd: -N sends FIN after stdin's end; nc exits once the server closes.
    let out =
        run_client(Command::new("nc").args(["-N", "-w", "10", &host, &port]), b"garbage\r\n\r\n", LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{stdout:?}");
    assert!(stdout.contains("\r\nConnection: close\r\n"), "{stdout:?}");
}

#[test]
fn wrk_100_connections_without_errors() {
    if !have_client("wrk_100_connections_without_errors", "wrk") {
        return;
    }
    let server = Server::start();
    let url = server.url("/");
    let out = run_client(
        Command::new("wrk").args(["-t2", "-c100", "-d3s", "--timeout", "5s", &url]),
        b"",
        Duration::from_secs(30),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().to_string()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report"));
    assert!(requests > 0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0" appears only if one is not 0.
    if let Some(errors) = report.lines().find(|l| l.contains("Socket errors:")) {
        let counts = errors.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok());
        assert!(counts.clone().count() == 4 && counts.sum::<u64>() == 0, "{errors}");
    }
    assert!(!report.contains("Non-2xx or 3xx responses"), "{report}");
}

/// `--threads 2`: two loops, each with its own listener on the port (SO_REUSEPORT); curl
/// gets its answer from whichever the kernel picks, on every connection.
#[test]
fn with_two_threads_two_listeners_share_the_port() {
    if !have_client("with_two_threads_two_listeners_share_the_port", "curl") {
        return;
    }
    let server = Server::with_args(&["127.0.0.1:0", "--threads", "2"]);
    assert_eq!(common::listeners_on(server.addr.port()), 2, "one listener per loop");
    for _ in 0..20 {
        let out = run_client(Command::new("curl").args(["-s", &server.url("/")]), b"", LIMIT);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"Hello, World!");
    }
}

/// Graceful shutdown with a real `kill -TERM`: an idle keep-alive connection is ended at
/// once; a request whose head is half sent still gets its answer, with `Connection: close`,
/// and its connection then ends; new connections are refused; the server exits 0 (not 1,
/// which would mean the 5 s deadline had to cut a connection).
#[test]
fn sigterm_answers_the_request_in_flight_ends_idle_connections_and_exits_0() {
    let mut server = Server::start();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(Some(LIMIT)).unwrap();
    idle.write_all(request).unwrap();
    let mut first = vec![0; HELLO.len()];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(first, HELLO, "served before the signal");
    let mut busy = TcpStream::connect(server.addr).unwrap();
    busy.set_read_timeout(Some(LIMIT)).unwrap();
    busy.write_all(&request[..10]).unwrap();
    thread::sleep(Duration::from_millis(100)); // let the half head arrive (not needed for correctness)
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The idle connection ends at once: the end of the stream, with nothing more.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    drop(idle); // as a client does at the end of the stream (the server lingers until then)
                // New connections are refused (bounded wait for the listener to close).
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        thread::sleep(Duration::from_millis(10));
    }
    // The request in flight is answered, as the connection's last.
    busy.write_all(&request[10..]).unwrap();
    let mut answer = Vec::new();
    busy.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("Hello, World!"), "{answer}");
    drop(busy);
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    server.exited_by_design = true;
}
