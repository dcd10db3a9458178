//! The fuzz targets' properties as plain tests (the targets themselves are in fuzz/, built
//! with nightly; see fuzz/README.md): the inputs the fuzzer found a bug with, replayed, and
//! fixed or seeded inputs that run on every `cargo test`.

mod http_request;
mod resp;
mod sim_echo;

use http_request::Item;

/// Seeded inputs for a sweep: xorshift64, so that every run tries the same ones.
fn inputs(seed: u64, count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        })
        .collect()
}

fn ok(method: &str, target: &str, keep_alive: bool, body: u64, status: u16) -> Item {
    Item::Request {
        method: method.into(),
        target: target.into(),
        http10: false,
        keep_alive,
        body,
        expect: false,
        status,
    }
}

/// Pipelined requests with bodies, cut in two at every byte: the same requests, in order,
/// bodies skipped wherever the cut falls (pins `Framer`'s body skipping and its resumed
/// search for the blank line, `scanned`).
#[test]
fn http_request_every_split_of_a_pipeline() {
    let stream = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n\
GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 3\r\n\r\n\r\n\r\
GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HT";
    let items = http_request::check_every_split(stream, 8192);
    assert_eq!(
        items,
        [
            ok("POST", "/", true, 5, 405),
            ok("GET", "/x?y", true, 0, 404),
            ok("GET", "/", false, 3, 200),
            ok("GET", "/", true, 0, 200),
        ]
    );
}

/// A head over `max_head` is 431 whether its end arrives or not, wherever the cut falls
/// (pins the limit check on a head still incomplete).
#[test]
fn http_request_every_split_of_an_oversized_head() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
    let max = head.len() - 1;
    assert_eq!(http_request::check_every_split(head, max), [Item::Error(431)]);
    assert_eq!(http_request::check_every_split(&head[..max], max), [Item::Error(431)]);
    assert!(http_request::check_every_split(&head[..max - 1], max).is_empty());
    assert_eq!(http_request::check_every_split(head, head.len()), [ok("GET", "/", true, 0, 200)]);
}

/// Malformed heads end the stream at their error, whatever follows.
#[test]
fn http_request_errors_end_the_stream() {
    let cases: [(&[u8], u16); 4] = [
        (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    ];
    for (stream, code) in cases {
        assert_eq!(http_request::check_every_split(stream, 8192), [Item::Error(code)]);
    }
}

/// The fuzz target's checks on 2,000 seeded inputs (short ones, so that heads end often).
#[test]
fn http_request_seeded_inputs() {
    for mut input in inputs(0x9e37_79b9_7f4a_7c15, 2000, 48) {
        // Turn some bytes into CR and LF, so that heads end.
        for b in input.iter_mut().skip(2) {
            *b = match *b % 8 {
                0 => b'\r',
                1 => b'\n',
                _ => *b,
            };
        }
        http_request::check(&input);
    }
}

/// The echo scenario of the fuzz target on 300 seeded inputs: clients, faults, time.
#[test]
fn sim_echo_seeded_inputs() {
    for input in inputs(0x2545_f491_4f6c_dd1d, 300, 96) {
        sim_echo::check(&input);
    }
}

/// A fixed scenario: three clients, small windows, a paused reader, a half-close and a reset.
#[test]
fn sim_echo_three_clients() {
    let input = [
        7, 2, 0, 1, 0, // seed 7, chunks of 1 byte, 64-byte windows, 1 ms latency, no chaos
        0, 0, 0, // three clients
        1, 0, 200, 1, // client 0 sends 457 bytes
        4, 1, // client 1 pauses reading
        1, 1, 255, 3, // client 1 sends 1,024 bytes
        9, 0, 50, // 50 ms pass
        6, 0, // client 0 half-closes
        1, 2, 10, 0, // client 2 sends 11 bytes
        8, 2, // client 2 resets
        9, 0, 20, // 20 ms pass
    ];
    sim_echo::check(&input);
}

/// Found by `fuzz/run 600 sim_echo` (crash-5f284f04...): a client that paused reading, so the
/// server waits for room to write, then half-closes and asks for 7 spurious readiness
/// events. The server does not read any more, so nothing used them up, and the simulator
/// reported the socket writable on every poll while any were left: a loop spinning without
/// time passing. A spurious event is now reported once, like any other edge.
#[test]
fn sim_echo_regression_livelock_at_51_ms() {
    let input = [
        7, 2, 0, 1, 0, 0, 1, 0, 200, 1, 4, 1, 1, 1, 255, 3, 9, 0, 50, 6, 255, 255, 255, 255, 255, 61, 255,
        255, 0, 0, 1, 2, 10, 0, 8, 2, 9, 0, 255, 255, 251, 9, 20,
    ];
    sim_echo::check(&input);
}

/// mini_redis's RESP parser on seeded inputs, and on a pipeline of every request form cut at
/// every byte (the `resp` target's checks).
#[test]
fn resp_seeded_inputs_and_every_cut_of_a_pipeline() {
    for input in inputs(0x5eed_4e57, 3_000, 48) {
        resp::check(&input);
    }
    let pipeline: &[u8] =
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*0\r\n\r\nSET \"a b\" 'c'\r\n*1\r\n$4\r\nPING\r\n";
    for cut in 0..=pipeline.len() {
        let mut data = vec![255, cut as u8];
        data.extend_from_slice(pipeline);
        resp::check(&data);
    }
    let limits = Default::default();
    let (requests, error) = resp::frame(&[pipeline], &limits);
    assert_eq!(error, None);
    assert_eq!(requests.len(), 6, "GET, PING, two skipped blanks, SET, PING: {requests:?}");
}
