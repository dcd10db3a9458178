//! libuv's ping_pongs: one TCP connection, `PING\n` back and forth for 5 s; round trips per
//! second. The echo server (examples/echo_server.rs) runs on its own loop in a thread.

use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, TcpStream};

mod common;
#[path = "../examples/echo_server.rs"]
#[allow(unused)]
mod echo_server;

struct State {
    round_trips: u64,
    received: usize,
    deadline: Instant,
}

fn main() {
    let secs = common::scale(5_000, 200);
    let addr = common::start_echo_server_thread(echo_server::serve);
    let mut lp = Loop::with_state(State { round_trips: 0, received: 0, deadline: Instant::now() }).unwrap();
    TcpStream::connect(&mut lp, addr, |lp, s, r| {
        r.unwrap();
        s.set_nodelay(lp, true).unwrap();
        s.write(lp, b"PING\n").unwrap();
        s.read_start(lp, |lp, s, data| {
            let data = data.unwrap();
            lp.state.received += data.len();
            if lp.state.received < 5 {
                return;
            }
            lp.state.received = 0;
            lp.state.round_trips += 1;
            if Instant::now() >= lp.state.deadline {
                s.close(lp).unwrap();
            } else {
                s.write(lp, b"PING\n").unwrap();
            }
        })
        .unwrap();
    })
    .unwrap();
    lp.state.deadline = Instant::now() + Duration::from_millis(secs);
    let start = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    common::report("ping_pong", "round trips/s", common::rate(lp.state.round_trips, elapsed), "/s");
}
