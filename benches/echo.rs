//! Echo with 100 connections in lock-step request/response, at 1 KiB and at 64 KiB:
//! round trips per second and throughput. The server runs on its own loop in a thread.

use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, TcpStream};

mod common;
#[path = "../examples/echo_server.rs"]
#[allow(unused)]
mod echo_server;

struct State {
    size: usize,
    deadline: Instant,
    round_trips: u64,
    open: usize,
}

fn run(addr: std::net::SocketAddr, connections: usize, size: usize, duration: Duration) {
    let mut lp =
        Loop::with_state(State { size, deadline: Instant::now() + duration, round_trips: 0, open: 0 })
            .unwrap();
    let message = vec![b'x'; size];
    for _ in 0..connections {
        let message = message.clone();
        TcpStream::connect(&mut lp, addr, move |lp, s, r| {
            r.unwrap();
            lp.state.open += 1;
            s.set_nodelay(lp, true).unwrap();
            s.write(lp, &message).unwrap();
            let mut received = 0;
            s.read_start(lp, move |lp, s, data| {
                received += data.unwrap().len();
                if received < lp.state.size {
                    return;
                }
                received = 0;
                lp.state.round_trips += 1;
                if Instant::now() >= lp.state.deadline {
                    s.close(lp).unwrap();
                } else {
                    s.write(lp, &message).unwrap();
                }
            })
            .unwrap();
        })
        .unwrap();
    }
    let start = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(lp.state.open, connections);
    let name = format!(
        "echo {connections}x{}",
        if size >= 1024 { format!("{}KiB", size / 1024) } else { format!("{size}B") }
    );
    common::report(&name, "round trips/s", common::rate(lp.state.round_trips, elapsed), "/s");
    common::report(
        &name,
        "MiB/s each way",
        common::rate(lp.state.round_trips * size as u64, elapsed) / (1 << 20) as f64,
        "MiB/s",
    );
}

fn main() {
    let duration = Duration::from_millis(common::scale(3_000, 200));
    let addr = common::start_echo_server_thread(echo_server::serve);
    run(addr, 100, 1024, duration);
    run(addr, 100, 64 * 1024, duration);
}
