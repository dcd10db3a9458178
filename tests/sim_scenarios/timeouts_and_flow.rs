//! Scenarios 1-5: idle timeout, slowloris, backpressure, fragmentation, partial writes.

use super::*;

// ---- 1. Idle timeout ---------------------------------------------------------------------

/// A server that closes connections idle for 30 s; every read restarts the timeout. The state
/// records the virtual time of every close callback.
pub(super) fn idle_server(sim: &mut Sim<Vec<u64>>) {
    TcpListener::bind(sim, addr(), |lp, stream| {
        let idle = Timer::new(lp, move |lp, idle| {
            stream.close_with(lp, |lp| lp.state.push(lp.now())).unwrap();
            idle.close(lp).unwrap();
        });
        idle.start(lp, secs(30), secs(30)).unwrap();
        stream.read_start(lp, move |lp, _, _| idle.again(lp).unwrap()).unwrap();
    })
    .unwrap();
}

#[test]
pub(super) fn s01_idle_timeout_closes_once_at_exactly_30_s() {
    let mut sim = Sim::new(1, Vec::new());
    idle_server(&mut sim);
    let silent = sim.connect(addr()).unwrap();
    let talker = sim.connect(addr()).unwrap();
    sim.advance(secs(10)).unwrap();
    talker.send(b"x"); // restarts its timeout: it runs out at 40 s

    sim.advance(ms(19_999)).unwrap();
    assert!(!silent.is_closed(), "still open at 29.999 s");
    assert!(sim.state.is_empty());
    sim.advance(ms(1)).unwrap();
    assert!(silent.is_closed(), "closed at 30 s");
    assert!(!talker.is_closed());
    assert_eq!(sim.state, [30_000]);

    sim.advance(ms(9_999)).unwrap();
    assert!(!talker.is_closed(), "still open at 39.999 s");
    sim.advance(ms(1)).unwrap();
    assert!(talker.is_closed(), "closed at 40 s");
    // Each closed once, and nothing more happens however long we wait.
    sim.advance(secs(3600)).unwrap();
    assert_eq!(sim.state, [30_000, 40_000]);
    let closes = events(&sim.trace(), "close");
    assert_eq!(closes, [(30_000, 0), (40_000, 0)]);
    assert_eq!(sim.handle_count(), 1, "only the listener is left");
}

// ---- 2. Slowloris ------------------------------------------------------------------------

#[test]
pub(super) fn s02_slowloris_gets_408_at_exactly_the_header_deadline() {
    let mut sim = Sim::new(2, ());
    http_hello::serve(&mut sim, addr(), http_config(30, 20)).unwrap();
    let peer = sim.connect(addr()).unwrap();
    // A head that never ends, one byte every 10 s: each byte restarts the idle timeout.
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa";
    peer.send(&head[..1]);
    sim.advance(secs(10)).unwrap();
    peer.send(&head[1..2]);
    sim.advance(ms(9_999)).unwrap();
    assert!(peer.recv().is_empty(), "nothing before 20 s");
    assert!(!peer.is_closed(), "still open at 19.999 s");
    sim.advance(ms(1)).unwrap();
    assert_eq!(peer.recv(), TIMEOUT_408, "the 408 arrives at 20 s");
    assert!(peer.is_closed(), "and FIN right after it");
    assert_eq!(sim.elapsed(), secs(20));
    let trace = sim.trace();
    assert_eq!(events(&trace, "write"), [(20_000, TIMEOUT_408.len())]);
    assert_eq!(events(&trace, "shutdown"), [(20_000, 0)]);

    // Lingering close: the server discards what still trickles in, which no longer restarts
    // the idle timeout, and closes its socket one idle timeout after its FIN.
    for i in 2..4 {
        peer.send(&head[i..i + 1]); // at 20 and 30 s
        sim.advance(secs(10)).unwrap();
    }
    peer.send(&head[4..5]); // at 40 s
    sim.advance(ms(9_999)).unwrap();
    assert_eq!(sim.handle_count(), 4, "listener, stream and its two timers at 49.999 s");
    sim.advance(ms(1)).unwrap();
    assert_eq!(sim.handle_count(), 1, "only the listener at 50 s");
    assert_eq!(events(&sim.trace(), "close"), [(50_000, 0)]);
    assert!(peer.recv().is_empty(), "nothing after the 408");
}

#[test]
pub(super) fn s02_slowloris_after_a_kept_alive_request_is_timed_from_its_first_byte() {
    let mut sim = Sim::new(2, ());
    http_hello::serve(&mut sim, addr(), http_config(30, 20)).unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.advance(secs(25)).unwrap();
    assert_eq!(peer.recv(), HELLO, "a complete head stops the deadline");
    // The next head starts at 25 s and trickles (each byte restarts the idle timeout): its
    // deadline is 45 s.
    peer.send(b"G");
    sim.advance(secs(10)).unwrap();
    peer.send(b"E");
    sim.advance(ms(9_999)).unwrap();
    assert!(peer.recv().is_empty());
    assert!(!peer.is_closed(), "still open at 44.999 s");
    sim.advance(ms(1)).unwrap();
    assert_eq!(peer.recv(), TIMEOUT_408);
    assert!(peer.is_closed());
    assert_eq!(sim.elapsed(), secs(45));
    // Our FIN ends the lingering close at once.
    peer.shutdown();
    sim.run_until_idle().unwrap();
    assert_eq!(events(&sim.trace(), "close"), [(45_000, 0)]);
    assert_eq!(sim.handle_count(), 1);
}

/// The exact twin of http_hello.rs's `a_pause_between_requests_is_not_a_slow_head`: pauses
/// between complete requests longer than the header deadline (20 s) cut nobody off, and a
/// head whose second part arrives 1 ms before its deadline is served.
#[test]
pub(super) fn s02_a_pause_between_requests_is_not_a_slow_head() {
    let mut sim = Sim::new(2, ());
    http_hello::serve(&mut sim, addr(), http_config(30, 20)).unwrap();
    let peer = sim.connect(addr()).unwrap();
    for _ in 0..2 {
        peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        sim.advance(secs(25)).unwrap();
        assert_eq!(peer.recv(), HELLO);
        assert!(!peer.is_closed());
    }
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    peer.send(&request[..10]);
    sim.advance(ms(19_999)).unwrap();
    assert!(peer.recv().is_empty());
    peer.send(&request[10..]);
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), HELLO, "served at 69.999 s, 1 ms within its deadline");
    sim.advance(secs(25)).unwrap();
    assert!(peer.recv().is_empty(), "no 408 for a head that completed");
    assert!(!peer.is_closed(), "the idle timeout (30 s) has not run out");
    assert_eq!(sim.elapsed(), ms(94_999));
}

// ---- 3. Backpressure ---------------------------------------------------------------------

pub(super) const STREAM_TOTAL: usize = 10 << 20;
pub(super) const STREAM_CHUNK: usize = 16 << 10;
pub(super) const HIGH_WATER: usize = 64 << 10;

#[derive(Default)]
pub(super) struct Producer {
    sent: usize,
    /// The largest write queue seen after a write.
    max_queue: usize,
    /// Writes that returned false (the high-water mark reached), and drain callbacks.
    pauses: usize,
    drains: usize,
}

/// Writes chunks of the 10 MiB stream until the write queue reaches the high-water mark.
pub(super) fn produce(lp: &mut Loop<Producer>, s: TcpStream) {
    while lp.state.sent < STREAM_TOTAL {
        let below = s.write(lp, &pattern(lp.state.sent, STREAM_CHUNK)).unwrap();
        lp.state.sent += STREAM_CHUNK;
        let queued = s.write_queue_size(lp).unwrap();
        lp.state.max_queue = lp.state.max_queue.max(queued);
        if !below {
            lp.state.pauses += 1;
            return;
        }
    }
    s.shutdown(lp, move |lp, r| {
        r.unwrap();
        s.close(lp).unwrap();
    })
    .unwrap();
}

#[test]
pub(super) fn s03_backpressure_stops_the_queue_at_the_high_water_mark() {
    let mut sim = Sim::new(3, Producer::default());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.set_high_water_mark(lp, HIGH_WATER).unwrap();
        s.on_drain(lp, |lp, s| {
            assert_eq!(s.write_queue_size(lp).unwrap(), 0);
            lp.state.drains += 1;
            produce(lp, s);
        })
        .unwrap();
        produce(lp, s);
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.pause_reading();
    sim.run_until_idle().unwrap();
    // The peer's 64 KiB window took the first four chunks, the queue the next four.
    assert_eq!(sim.state.sent, 64 * 1024 + HIGH_WATER);
    assert_eq!(sim.state.max_queue, HIGH_WATER);
    assert_eq!(sim.state.pauses, 1);

    // A paused peer for a virtual hour: nothing moves, and the loop sleeps instead of spinning.
    let iterations = sim.metrics().iterations;
    sim.advance(secs(3600)).unwrap();
    assert!(sim.metrics().iterations - iterations <= 2, "the loop spun while blocked");
    assert_eq!(sim.state.sent, 64 * 1024 + HIGH_WATER);

    peer.resume_reading();
    sim.run_until_idle().unwrap();
    let got = peer.recv();
    assert_eq!(got.len(), STREAM_TOTAL);
    assert!(got == pattern(0, STREAM_TOTAL), "every byte, in order");
    assert!(peer.is_closed());
    assert_eq!(sim.state.max_queue, HIGH_WATER, "the queue never went past the mark");
    assert_eq!(sim.state.drains, sim.state.pauses, "one drain per pause");
    assert_eq!(sim.handle_count(), 1);
}

// ---- 4. Fragmentation sweep --------------------------------------------------------------

/// Pipelined requests covering every kind of answer; the last one closes.
pub(super) const PIPELINE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\nGET / HTTP/1.1\
DELETE / HTTP/1.1\r\nHost: x\r\n\r\n\
GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
GET /?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends the pipeline and FIN to http_hello on a simulation set up by `config`; returns the
/// response and the simulation.
pub(super) fn pipeline(config: SimConfig) -> (Vec<u8>, Sim<()>) {
    let mut sim = Sim::with_config(config, ());
    http_hello::serve(&mut sim, addr(), http_config(30, 20)).unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.send(PIPELINE);
    peer.shutdown();
    sim.run_until_idle().unwrap();
    assert!(peer.is_closed());
    assert_eq!(sim.elapsed(), Duration::ZERO, "no time passed");
    assert_eq!(sim.handle_count(), 1, "the connection and its timers are closed");
    (peer.recv(), sim)
}

#[test]
pub(super) fn s04_fragmentation_sweep_gives_byte_identical_responses() {
    let (whole, sim) = pipeline(SimConfig::new().seed(4));
    assert_eq!(events(&sim.trace(), "read").len(), 1, "one read of the whole pipeline");
    let text = String::from_utf8(whole.clone()).unwrap();
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "200", "404", "405", "405", "200", "200"]);
    assert!(text.ends_with("Connection: close\r\n\r\nHello, World!"));

    let (bytes, sim) = pipeline(SimConfig::new().seed(4).chunking(Chunking::Fixed(1)));
    assert!(bytes == whole, "byte by byte");
    let reads = events(&sim.trace(), "read");
    assert_eq!(reads.len(), PIPELINE.len(), "one read per byte");
    assert!(reads.iter().all(|&(_, n)| n == 1));

    let start = Instant::now();
    for seed in 0..1000 {
        let max = 1 + (seed % 40) as usize;
        let (bytes, sim) = pipeline(SimConfig::new().seed(seed).chunking(Chunking::Random { max }));
        assert!(bytes == whole, "seed {seed}, chunks of at most {max}");
        let reads = events(&sim.trace(), "read");
        assert!(reads.iter().all(|&(_, n)| (1..=max).contains(&n)), "seed {seed}");
        assert_eq!(reads.iter().map(|&(_, n)| n).sum::<usize>(), PIPELINE.len());
    }
    eprintln!("fragmentation sweep: 1,000 seeds in {:?}", start.elapsed());
}

#[test]
pub(super) fn s04_the_same_responses_under_seeded_chaos() {
    const FAULTS: [&str; 3] = ["chaos: EMFILE", "chaos: spurious read", "chaos: short write"];
    let (whole, _) = pipeline(SimConfig::new().seed(4));
    let (mut faults, mut seeds_with_faults) = ([0usize; 3], 0);
    let start = Instant::now();
    for seed in 0..1000 {
        // Short and refused writes, reads that find nothing, accepts failing with EMFILE.
        let config = SimConfig::new().seed(seed).chaos(0.3).chunking(Chunking::Random { max: 7 });
        let mut sim = Sim::with_config(config, ());
        http_hello::serve(&mut sim, addr(), http_config(30, 20)).unwrap();
        let peer = sim.connect(addr()).unwrap();
        peer.send(PIPELINE);
        peer.shutdown();
        // A failed accept backs off (10 ms, doubling to 1 s): let virtual time pass.
        sim.advance(secs(15)).unwrap();
        assert!(peer.recv() == whole, "seed {seed}");
        assert!(peer.is_closed(), "seed {seed}");
        let trace = sim.trace();
        for (i, kind) in FAULTS.iter().enumerate() {
            faults[i] += events(&trace, kind).len();
        }
        if FAULTS.iter().any(|kind| !events(&trace, kind).is_empty()) {
            seeds_with_faults += 1;
        }
    }
    eprintln!("chaos sweep: 1,000 seeds in {:?}, faults {faults:?}", start.elapsed());
    // Chaos fired, of every kind, in most runs: the sweep tested something.
    for (kind, n) in FAULTS.iter().zip(faults) {
        assert!(n >= 100, "{kind}: only {n} in 1,000 runs");
    }
    assert!(seeds_with_faults >= 900, "only {seeds_with_faults} of 1,000 runs saw a fault");
}

#[test]
pub(super) fn s04_a_seeded_random_chunking_replays_exactly() {
    // `check_determinism` runs the default configuration only, so compare two runs by hand.
    let config = || SimConfig::new().seed(77).chunking(Chunking::Random { max: 5 });
    let (a, sim_a) = pipeline(config());
    let (b, sim_b) = pipeline(config());
    assert!(a == b);
    assert_eq!(sim_a.trace(), sim_b.trace());
}

// ---- 5. Partial writes -------------------------------------------------------------------

#[test]
pub(super) fn s05_partial_writes_after_three_would_blocks_resume_at_the_right_offset() {
    let mut sim = Sim::new(5, Vec::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        for (i, chunk) in [b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"].into_iter().enumerate() {
            s.write_with(lp, chunk, move |lp, r| {
                // What is still queued when the callback runs says where the stream stands.
                let queued = s.write_queue_size(lp).unwrap();
                lp.state.push((i, r.map_err(|e| e.kind()), queued));
            })
            .unwrap();
        }
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.would_block_writes(3);
    peer.limit_writes(0, 4, 4);
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), b"0123456789abcdefghijABCDEFGHIJ");
    // Three would-blocks (not traced), four writes of 4 bytes, then the remaining 14 at once.
    assert_eq!(events(&sim.trace(), "write"), [(0, 4), (0, 4), (0, 4), (0, 4), (0, 14)]);
    // Write 0 finished with the third short write (12 bytes out, 18 still queued); 1 and 2
    // with the last one. Once each, in order.
    assert_eq!(sim.state, [(0, Ok(()), 18), (1, Ok(()), 0), (2, Ok(()), 0)]);
}
