//! The pool's modes, injected faults, chaos, determinism, and inputs at their limits
//! (`Duration::MAX` everywhere it can be given).

use super::*;

#[test]
fn pool_modes() {
    for mode in [PoolMode::Inline, PoolMode::Seeded] {
        let mut sim = Sim::with_config(SimConfig::new().seed(12).pool(mode), Vec::new());
        for i in 0..20 {
            sim.queue_work(move || i, |lp, r| lp.state.push(r.unwrap())).unwrap();
        }
        sim.run().unwrap();
        let mut got = sim.state.clone();
        if mode == PoolMode::Inline {
            assert_eq!(got, (0..20).collect::<Vec<_>>());
        } else {
            assert_ne!(got, (0..20).collect::<Vec<_>>(), "a seeded order");
            got.sort();
            assert_eq!(got, (0..20).collect::<Vec<_>>());
        }
    }
    let mut sim = Sim::with_config(SimConfig::new().seed(12).pool(PoolMode::Manual), Vec::new());
    sim.queue_work(|| 1, |lp, r| lp.state.push(r.unwrap())).unwrap();
    sim.queue_work(|| 2, |lp, r| lp.state.push(r.unwrap())).unwrap();
    sim.run_until_idle().unwrap();
    assert!(sim.state.is_empty());
    assert_eq!(sim.queued_pool_jobs(), 2);
    assert!(sim.run_pool_job());
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, vec![1]);
}

#[test]
fn slow_and_failing_pool_jobs() {
    let mut sim = Sim::new(13, Vec::new());
    sim.delay_pool_jobs(Duration::from_secs(5));
    sim.queue_work(|| "slow", |lp, r| lp.state.push(format!("{} at {}", r.unwrap(), lp.now()))).unwrap();
    sim.run().unwrap();
    sim.delay_pool_jobs(Duration::ZERO);
    sim.fail_pool_jobs(1);
    sim.queue_work(|| "x", |lp, r| lp.state.push(format!("failed: {}", r.is_err()))).unwrap();
    sim.run().unwrap();
    assert_eq!(sim.state, vec!["slow at 5000", "failed: true"]);
}

#[test]
fn partial_writes_and_would_block_resume_at_the_right_offset() {
    let mut sim = Sim::new(14, Vec::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        for (i, chunk) in [&b"abcdef"[..], b"ghij", b"klmnop"].iter().enumerate() {
            s.write_with(lp, chunk, move |lp, r| lp.state.push((i, r.is_ok()))).unwrap();
        }
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.would_block_writes(3);
    peer.limit_writes(0, 5, 2);
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), b"abcdefghijklmnop");
    assert_eq!(sim.state, vec![(0, true), (1, true), (2, true)]);
}

#[test]
fn emfile_on_accept_pauses_and_recovers() {
    let mut sim = Sim::new(15, 0u32);
    let listener = TcpListener::bind(&mut sim, addr(), |lp, s| {
        lp.state += 1;
        s.close(lp).unwrap();
    })
    .unwrap();
    sim.emfile_on_accept(Duration::from_secs(5));
    let peers: Vec<_> = (0..3).map(|_| sim.connect(addr()).unwrap()).collect();
    sim.advance(Duration::from_millis(4_999)).unwrap();
    assert_eq!(sim.state, 0);
    let iterations = sim.metrics().iterations;
    assert!(iterations < 200, "{iterations} iterations in 5 s of EMFILE: a busy loop");
    // The back-off timer is the loop's own: counted, but not shown to walk.
    assert_eq!(sim.handle_count(), 2);
    let mut walked = Vec::new();
    sim.walk(|_, h| walked.push(h));
    assert_eq!(walked, vec![Handle::from(listener)]);
    sim.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(sim.state, 3);
    assert!(peers.iter().all(|p| p.is_closed()));
    assert_eq!(sim.handle_count(), 1, "the episode is over: its timer is closed");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let scenario = |sim: &mut Sim<Vec<u8>>| {
        echo(sim);
        let peer = sim.connect(addr()).unwrap();
        peer.send(&[1u8; 5000]);
        peer.shutdown();
        sim.run_until_idle().unwrap();
    };
    let trace = check_determinism(42, scenario).unwrap();
    assert!(trace.iter().any(|e| e.kind == "read"));
}

#[test]
fn chaos_changes_the_schedule_but_not_the_result() {
    // The same exchange under heavy chaos, over many seeds: echoes stay byte-exact.
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let mut seeds_with_chaos = 0;
    for seed in 0..50 {
        let mut sim = Sim::with_config(SimConfig::new().seed(seed).chaos(0.3).window(4096), ());
        echo(&mut sim);
        let peer = sim.connect(addr()).unwrap();
        peer.send(&payload);
        peer.shutdown();
        // The listener stays open (run() would report a stall); chaos may need time (an
        // EMFILE back-off), so let a few seconds pass.
        sim.advance(Duration::from_secs(5)).unwrap();
        assert_eq!(peer.recv(), payload, "seed {seed}");
        assert!(peer.is_closed());
        seeds_with_chaos += usize::from(sim.trace().iter().any(|e| e.kind.starts_with("chaos")));
    }
    assert!(seeds_with_chaos >= 40, "chaos fired in only {seeds_with_chaos} of 50 runs");
}

#[test]
fn per_link_latency() {
    let mut sim = Sim::new(16, ());
    echo(&mut sim);
    let slow = sim.connect(addr()).unwrap();
    let fast = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    slow.set_latency(ms(100));
    slow.send(b"s");
    fast.send(b"f");
    sim.run_until_idle().unwrap();
    assert_eq!(fast.recv(), b"f");
    assert!(slow.recv().is_empty());
    sim.advance(ms(200)).unwrap();
    assert_eq!(slow.recv(), b"s");
}

// Durations too long to count saturate: the settings below overflowed virtual time (a panic
// in debug builds) once time had moved at all.

#[test]
fn a_latency_of_duration_max_means_never_arriving() {
    let mut sim = Sim::with_config(SimConfig::new().seed(17).latency(Duration::MAX), ());
    echo(&mut sim);
    sim.advance(ms(5)).unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"lost");
    sim.run_until_idle().unwrap();
    sim.advance(ms(1_000)).unwrap();
    assert!(peer.recv().is_empty());
    assert!(!peer.is_closed());
    peer.reset();
    sim.advance(ms(1_000)).unwrap();
}

#[test]
fn a_link_latency_of_duration_max_stalls_only_that_link() {
    let mut sim = Sim::new(18, ());
    echo(&mut sim);
    sim.advance(ms(5)).unwrap();
    let slow = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    slow.set_latency(Duration::MAX);
    slow.send(b"s");
    slow.shutdown();
    sim.run_until_idle().unwrap();
    sim.advance(ms(1_000)).unwrap();
    assert!(slow.recv().is_empty());
    slow.reset_after(0);
    slow.close();
    // Another peer still connects and is echoed.
    let fast = sim.connect(addr()).unwrap();
    fast.send(b"f");
    sim.run_until_idle().unwrap();
    assert_eq!(fast.recv(), b"f");
}

#[test]
fn emfile_on_accept_for_duration_max_refuses_accepts_but_the_sim_goes_on() {
    let mut sim = Sim::new(19, 0u32);
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        lp.state += 1;
        s.close(lp).unwrap();
    })
    .unwrap();
    sim.advance(ms(5)).unwrap();
    sim.emfile_on_accept(Duration::MAX);
    let peer = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    sim.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(sim.state, 0);
    assert!(!peer.is_closed(), "waits in the backlog");
}

#[test]
fn advancing_by_duration_max_saturates() {
    let mut sim = Sim::new(20, 0u32);
    let t = Timer::new(&mut sim, |lp, t| {
        lp.state += 1;
        t.close(lp).unwrap();
    });
    t.start(&mut sim, ms(10), Duration::ZERO).unwrap();
    sim.advance(ms(5)).unwrap();
    // Just past u64::MAX milliseconds: truncated rather than saturated, this was 384 ms.
    sim.advance(Duration::from_secs(u64::MAX / 1000 + 1)).unwrap();
    assert_eq!(sim.state, 1);
    assert_eq!(sim.elapsed(), Duration::from_millis(u64::MAX));
    sim.advance(Duration::MAX).unwrap();
    sim.run_until_idle().unwrap();
}

#[test]
fn a_pool_delay_of_duration_max_never_finishes_the_job() {
    let mut sim = Sim::new(21, 0u32);
    sim.advance(ms(5)).unwrap();
    sim.delay_pool_jobs(Duration::MAX);
    sim.queue_work(|| (), |lp, _| lp.state += 1).unwrap();
    sim.run_until_idle().unwrap();
    sim.advance(ms(1_000)).unwrap();
    assert_eq!(sim.state, 0);
}

/// A panic that propagates out of `run_until_idle` (and so out of `step`, `advance` and
/// `run`) leaves the simulation usable: time still moves and later deadlines still fire.
/// (It used to leave the time horizon pinned at the moment of the panic, so `step` never
/// moved time again and a harness waiting for a later event spun forever.)
#[test]
fn time_still_moves_after_a_panic_out_of_the_simulation() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut sim = Sim::new(11, Vec::new());
    let bomb = Timer::new(&mut sim, |_, _| panic!("boom"));
    bomb.start(&mut sim, Duration::ZERO, Duration::ZERO).unwrap();
    let later = Timer::new(&mut sim, |lp, t| {
        lp.state.push(lp.now());
        t.close(lp).unwrap();
    });
    later.start(&mut sim, ms(50), Duration::ZERO).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| sim.run_until_idle())).is_err());
    assert_eq!(sim.step().unwrap(), Some(ms(50)), "step jumps to the next deadline");
    assert_eq!(sim.state, vec![50]);
}
