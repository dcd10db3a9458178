//! UDP echo: datagrams per second through the udp_echo example's server, at 64 B and at
//! 1,400 B (a datagram that fits an Ethernet frame), from 1 and from 16 client sockets, each
//! keeping 8 datagrams in flight so that the server finds several queued per wakeup. The
//! server runs on its own loop in a thread; the clients share one loop. A datagram lost on
//! the way (a full receive queue drops it) is replaced after 20 ms without echoes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, Timer, UdpSocket};

mod common;
#[path = "../examples/udp_echo.rs"]
#[allow(unused)]
mod udp_echo;

/// Datagrams each client keeps in flight.
const DEPTH: usize = 8;

struct State {
    deadline: Instant,
    echoes: u64,
    /// Sends that found the socket full and were queued (sendmmsg would batch those).
    queued: u64,
    /// Echoes per client since the last refill check.
    heard: Vec<u64>,
}

fn start_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lp = Loop::new().unwrap();
        let server = udp_echo::serve(&mut lp, "127.0.0.1:0".parse().unwrap()).unwrap();
        tx.send(server.local_addr(&lp).unwrap()).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
    rx.recv().unwrap()
}

fn run(server: SocketAddr, clients: usize, size: usize, duration: Duration) {
    let deadline = Instant::now() + duration;
    let mut lp = Loop::with_state(State { deadline, echoes: 0, queued: 0, heard: vec![0; clients] }).unwrap();
    let message = vec![b'x'; size];
    let mut sockets = Vec::new();
    for i in 0..clients {
        let s = UdpSocket::bind(&mut lp, "127.0.0.1:0").unwrap();
        let echo = message.clone();
        s.recv_start(&mut lp, move |lp, s, d| {
            if d.is_err() {
                return;
            }
            lp.state.echoes += 1;
            lp.state.heard[i] += 1;
            if Instant::now() >= lp.state.deadline {
                let _ = s.recv_stop(lp);
            } else {
                let _ = s.send_to(lp, &echo, server);
                lp.state.queued += s.send_queue_count(lp).unwrap_or(0).min(1) as u64;
            }
        })
        .unwrap();
        for _ in 0..DEPTH {
            s.send_to(&mut lp, &message, server).unwrap();
        }
        sockets.push(s);
    }
    let message = message.clone();
    let refill = Timer::new(&mut lp, move |lp, t| {
        if Instant::now() >= lp.state.deadline {
            // A socket whose datagrams were all dropped hears nothing more: stop them all,
            // or the loop would wait for it for ever.
            for s in &sockets {
                let _ = s.recv_stop(lp);
            }
            t.close(lp).unwrap();
            return;
        }
        for (i, s) in sockets.iter().enumerate() {
            if std::mem::take(&mut lp.state.heard[i]) == 0 && s.is_receiving(lp) {
                for _ in 0..DEPTH {
                    let _ = s.send_to(lp, &message, server);
                }
            }
        }
    });
    refill.start(&mut lp, Duration::from_millis(20), Duration::from_millis(20)).unwrap();
    let start = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    let name = format!("udp {clients}x{size}B");
    common::report(&name, "datagrams/s", common::rate(lp.state.echoes, elapsed), "/s");
    common::report(&name, "client sends queued", lp.state.queued as f64, "");
}

fn main() {
    let duration = Duration::from_millis(common::scale(2_000, 100));
    let server = start_server();
    for clients in [1, 16] {
        for size in [64, 1400] {
            run(server, clients, size, duration);
        }
    }
}
