//! Simulated time per real time: one virtual hour of 100 connections, each with a 1 s
//! repeating timer that sends a heartbeat the fake peer receives.

use std::time::{Duration, Instant};

use evloop::sim::Sim;
use evloop::{TcpListener, Timer};

mod common;

fn main() {
    let virtual_secs = common::scale(3600, 60);
    let addr = "10.0.0.1:9000".parse().unwrap();
    let mut sim = Sim::new(1, 0u64);
    TcpListener::bind(&mut sim, addr, |lp, stream| {
        let beat = Timer::new(lp, move |lp, _| {
            lp.state += 1;
            stream.write(lp, b"beat\n").unwrap();
        });
        beat.start(lp, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    })
    .unwrap();
    let peers: Vec<_> = (0..100).map(|_| sim.connect(addr).unwrap()).collect();
    let start = Instant::now();
    sim.advance(Duration::from_secs(virtual_secs)).unwrap();
    let real = start.elapsed();
    assert_eq!(sim.state, 100 * virtual_secs);
    assert!(peers.iter().all(|p| p.recv().len() == 5 * virtual_secs as usize));
    common::report("sim_hour", "virtual s", virtual_secs as f64, "s");
    common::report("sim_hour", "real ms", real.as_secs_f64() * 1e3, "ms");
    common::report("sim_hour", "virtual/real", virtual_secs as f64 / real.as_secs_f64(), "x");
}
