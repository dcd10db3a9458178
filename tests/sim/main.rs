//! The simulated driver's own promises: virtual time, in-memory TCP with windows, chunking,
//! FIN and RST, fake peers and listeners, the pool modes, faults, stall and livelock
//! detection, determinism. Pool modes, faults and saturating limits are in
//! `faults_and_limits.rs`; replay by seed, connect faults and divergence in `replay.rs`; the
//! simulated hour of 1,000 clients under chaos in `soak.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use evloop::sim::{check_determinism, Chunking, PoolMode, Sim, SimConfig, SimError};
use evloop::{Check, Handle, Idle, TcpListener, TcpStream, Timer};

fn addr() -> SocketAddr {
    "10.0.0.1:7000".parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An echo server on `addr()` that also records what it read.
fn echo<S: 'static>(sim: &mut Sim<S>) -> TcpListener {
    TcpListener::bind(sim, addr(), |lp, s| {
        s.read_start(lp, |lp, s, d| match d {
            Ok(b) if !b.is_empty() => drop(s.write(lp, b).unwrap()),
            Ok(_) => s.shutdown(lp, move |lp, _| s.close(lp).unwrap()).unwrap(),
            Err(_) => s.close(lp).unwrap(),
        })
        .unwrap();
    })
    .unwrap()
}

#[test]
fn a_fake_peer_talks_to_an_echo_server() {
    let mut sim = Sim::new(1, ());
    echo(&mut sim);
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"hello");
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv(), b"hello");
    peer.shutdown();
    sim.run_until_idle().unwrap();
    assert!(peer.is_closed(), "the server shut down after our FIN");
    assert_eq!(sim.elapsed(), Duration::ZERO, "no time passed");
}

#[test]
fn run_until_idle_never_moves_time_and_advance_visits_deadlines_in_order() {
    let mut sim = Sim::new(2, Vec::new());
    for t in [30u64, 10, 20] {
        let timer = Timer::new(&mut sim, move |lp, _| {
            let now = lp.now();
            lp.state.push((t, now));
        });
        timer.start(&mut sim, ms(t), Duration::ZERO).unwrap();
    }
    sim.run_until_idle().unwrap();
    assert!(sim.state.is_empty());
    assert_eq!(sim.elapsed(), Duration::ZERO);
    sim.advance(ms(25)).unwrap();
    assert_eq!(sim.state, vec![(10, 10), (20, 20)]);
    assert_eq!(sim.elapsed(), ms(25));
    assert_eq!(sim.step().unwrap(), Some(ms(30)));
    assert_eq!(sim.state.last(), Some(&(30, 30)));
    assert_eq!(sim.step().unwrap(), None);
}

#[test]
fn a_one_hour_timer_runs_in_no_real_time() {
    let mut sim = Sim::new(3, 0u32);
    let t = Timer::new(&mut sim, |lp, t| {
        lp.state += 1;
        if lp.state == 3600 {
            t.close(lp).unwrap();
        }
    });
    t.start(&mut sim, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    let real = std::time::Instant::now();
    sim.run().unwrap();
    assert_eq!(sim.state, 3600);
    assert_eq!(sim.elapsed(), Duration::from_secs(3600));
    assert!(real.elapsed() < Duration::from_secs(10));
}

#[test]
fn stalled_names_the_handles_that_wait_forever() {
    let mut sim = Sim::new(4, ());
    let listener = echo(&mut sim);
    match sim.run() {
        Err(SimError::Stalled { live, .. }) => {
            assert_eq!(live, vec![(listener.handle(), evloop::HandleKind::TcpListener)])
        }
        other => panic!("expected a stall, got {other:?}"),
    }
}

#[test]
fn an_idle_watcher_that_never_stops_is_reported_as_livelock() {
    let mut sim = Sim::with_config(SimConfig::new().seed(5).livelock_limit(1000), ());
    let idle = Idle::new(&mut sim, |_, _| {});
    idle.start(&mut sim).unwrap();
    match sim.advance(ms(10)) {
        Err(SimError::Livelock { active, .. }) => {
            assert_eq!(active, vec![(idle.handle(), evloop::HandleKind::Idle)])
        }
        other => panic!("expected a livelock, got {other:?}"),
    }
}

#[test]
fn reads_are_cut_into_chunks() {
    for (chunking, expect_max) in
        [(Chunking::Fixed(1), 1), (Chunking::Fixed(3), 3), (Chunking::Random { max: 4 }, 4)]
    {
        let mut sim = Sim::with_config(SimConfig::new().seed(6).chunking(chunking), Vec::new());
        TcpListener::bind(&mut sim, addr(), |lp, s| {
            s.read_start(lp, |lp, _, d| lp.state.push(d.unwrap().to_vec())).unwrap();
        })
        .unwrap();
        let peer = sim.connect(addr()).unwrap();
        peer.send(b"0123456789");
        sim.run_until_idle().unwrap();
        let chunks = &sim.state;
        assert_eq!(chunks.concat(), b"0123456789");
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= expect_max), "{chunking:?}: {chunks:?}");
    }
}

/// Readiness is edge-triggered, as on the Linux backend: input that has been reported once
/// is not reported again, so the loop must come back by itself to a socket it stopped
/// reading early. 3 MiB at once is more than it reads from one socket per wakeup (32 reads
/// of 64 KiB); a real socket rarely holds that much, the simulator can.
#[test]
fn a_reader_stopped_by_the_per_wakeup_cap_still_gets_everything() {
    let mut sim = Sim::with_config(SimConfig::new().seed(20).window(4 << 20), (0usize, 0usize));
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.read_start(lp, |lp, _, d| {
            let n = d.unwrap().len();
            lp.state.0 += n;
            lp.state.1 += 1;
        })
        .unwrap();
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    peer.send(&vec![7u8; 3 << 20]);
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, (3 << 20, 48));
}

/// More connections waiting than a listener accepts per wakeup (128): all are accepted.
#[test]
fn a_listener_stopped_by_the_per_wakeup_cap_accepts_everyone() {
    let mut sim = Sim::new(22, 0usize);
    TcpListener::bind(&mut sim, addr(), |lp, _| lp.state += 1).unwrap();
    let peers: Vec<_> = (0..200).map(|_| sim.connect(addr()).unwrap()).collect();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, 200);
    drop(peers);
}

/// A reader that stops after each chunk and is resumed later in the same iteration (here
/// by a check watcher) gets the rest: the poller changes nothing in between, so no new event
/// would come.
#[test]
fn read_stop_then_read_resume_in_one_iteration_loses_nothing() {
    let mut sim = Sim::with_config(SimConfig::new().seed(21).window(256 << 10), (Vec::new(), None));
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        lp.state.1 = Some(s);
        s.read_start(lp, |lp, s, d| {
            lp.state.0.push(d.unwrap().len());
            s.read_stop(lp).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    let check = Check::new(&mut sim, |lp, _| {
        if let Some(s) = lp.state.1.filter(|s| !s.is_reading(lp)) {
            s.read_resume(lp).unwrap();
        }
    });
    check.start(&mut sim).unwrap();
    let peer = sim.connect(addr()).unwrap();
    sim.run_until_idle().unwrap();
    peer.send(&vec![7u8; 100 << 10]);
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.0, vec![64 << 10, 36 << 10]);
}

#[test]
fn the_window_makes_backpressure_real() {
    let mut sim = Sim::with_config(SimConfig::new().seed(7).window(1000), Vec::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.set_high_water_mark(lp, 500).unwrap();
        let below = s.write(lp, &[7u8; 3000]).unwrap();
        lp.state.push((below, s.write_queue_size(lp).unwrap()));
        s.on_drain(lp, |lp, s| lp.state.push((true, s.write_queue_size(lp).unwrap()))).unwrap();
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.pause_reading();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, vec![(false, 2000)], "the window took 1000 bytes");
    peer.resume_reading();
    sim.run_until_idle().unwrap();
    assert_eq!(peer.recv().len(), 3000);
    assert_eq!(sim.state.last(), Some(&(true, 0)), "drain fired");
}

/// A paused peer that takes a few bytes opens the program's window by exactly that much.
#[test]
fn a_paused_peer_takes_bytes_one_bite_at_a_time() {
    let mut sim = Sim::with_config(SimConfig::new().seed(24).window(1000), None);
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.write(lp, &[b'x'; 3000]).unwrap();
        lp.state = Some(s);
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.pause_reading();
    sim.run_until_idle().unwrap();
    let s = sim.state.unwrap();
    assert_eq!(s.write_queue_size(&sim).unwrap(), 2000, "the window holds 1000");
    assert_eq!(peer.recv_up_to(300), vec![b'x'; 300]);
    sim.run_until_idle().unwrap();
    assert_eq!(s.write_queue_size(&sim).unwrap(), 1700);
    assert_eq!(peer.recv_up_to(5000).len(), 1000, "what has arrived: the window's worth");
    sim.run_until_idle().unwrap();
    assert_eq!(s.write_queue_size(&sim).unwrap(), 700);
    assert!(peer.recv().is_empty(), "still paused");
    peer.resume_reading();
    sim.run_until_idle().unwrap();
    assert_eq!(s.write_queue_size(&sim).unwrap(), 0);
    assert_eq!(peer.recv().len(), 3000 - 300 - 1000);
}

#[test]
fn latency_delays_delivery_by_the_link_time() {
    let mut sim = Sim::with_config(SimConfig::new().seed(8).latency(ms(50)), ());
    echo(&mut sim);
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"ping");
    sim.advance(ms(99)).unwrap();
    assert!(peer.recv().is_empty(), "a round trip takes 100 ms");
    sim.advance(ms(1)).unwrap();
    assert_eq!(peer.recv(), b"ping");
}

#[test]
fn a_reset_reaches_the_reader_after_the_data() {
    let mut sim = Sim::new(9, Vec::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| {
        s.read_start(lp, |lp, _, d| lp.state.push(d.map(|b| b.to_vec()).map_err(|e| e.kind()))).unwrap();
    })
    .unwrap();
    let peer = sim.connect(addr()).unwrap();
    peer.send(b"last words");
    peer.reset();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, vec![Ok(b"last words".to_vec()), Err(std::io::ErrorKind::ConnectionReset)]);
}

#[test]
fn connecting_to_nothing_is_refused_and_a_fake_listener_accepts() {
    let mut sim = Sim::new(10, Vec::new());
    TcpStream::connect(&mut sim, addr(), |lp, s, r| {
        lp.state.push(format!("{:?}", r.map_err(|e| e.kind())));
        s.close(lp).unwrap();
    })
    .unwrap();
    sim.run().unwrap();
    let server = sim.listen(addr()).unwrap();
    TcpStream::connect(&mut sim, addr(), |lp, s, r| {
        lp.state.push(format!("{:?}", r.map_err(|e| e.kind())));
        s.write(lp, b"hi").unwrap();
    })
    .unwrap();
    sim.run_until_idle().unwrap();
    let peer = server.accept().unwrap();
    assert_eq!(peer.recv(), b"hi");
    assert_eq!(sim.state, vec!["Err(ConnectionRefused)", "Ok(())"]);
}

/// A test finds the program's stream for a fake peer by address, both ways round.
#[test]
fn a_fake_peer_and_the_programs_stream_name_each_other() {
    let mut sim = Sim::new(23, Vec::<TcpStream>::new());
    TcpListener::bind(&mut sim, addr(), |lp, s| lp.state.push(s)).unwrap();
    let peers: Vec<_> = (0..3).map(|_| sim.connect(addr()).unwrap()).collect();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.len(), 3);
    for peer in &peers {
        assert_eq!(peer.peer_addr(), addr());
        let streams = sim.state.clone();
        let mine: Vec<_> =
            streams.into_iter().filter(|s| s.peer_addr(&sim).unwrap() == peer.local_addr()).collect();
        assert_eq!(mine.len(), 1, "exactly one stream per peer");
        assert_eq!(mine[0].local_addr(&sim).unwrap(), addr());
    }
    let server_addr: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let server = sim.listen(server_addr).unwrap();
    let out = TcpStream::connect(&mut sim, server_addr, |_, _, r| r.unwrap()).unwrap();
    sim.run_until_idle().unwrap();
    let peer = server.accept().unwrap();
    assert_eq!(peer.local_addr(), server_addr);
    assert_eq!(peer.peer_addr(), out.local_addr(&sim).unwrap());
}

#[test]
fn a_blackholed_connect_never_answers() {
    let mut sim = Sim::new(11, 0u32);
    sim.blackhole_connects(addr());
    let s = TcpStream::connect(&mut sim, addr(), |lp, _, _| lp.state += 1).unwrap();
    let give_up = Timer::new(&mut sim, move |lp, t| {
        s.close(lp).unwrap();
        t.close(lp).unwrap();
    });
    give_up.start(&mut sim, Duration::from_secs(5), Duration::ZERO).unwrap();
    sim.run().unwrap();
    assert_eq!(sim.state, 1, "the connect callback ran once, cancelled");
    assert_eq!(sim.elapsed(), Duration::from_secs(5));
}

mod faults_and_limits;
mod replay;
mod soak;
