//! Dropping a loop with registered sockets frees them: their peers see the connection end
//! and no descriptor is left behind, even while a `Waker` clone keeps the poller alive. One
//! test function only, so that no other test in this process opens descriptors meanwhile.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream as StdStream;
use std::time::Duration;

use evloop::{Loop, RunMode, TcpListener, Waker};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn dropping_a_loop_with_registered_sockets_closes_them_while_a_waker_lives() {
    for backend in common::backends() {
        let before = open_fds();
        let mut lp = Loop::builder().state(0usize).backend(backend).build().unwrap();
        let listener = TcpListener::bind(&mut lp, "127.0.0.1:0", |lp, stream| {
            lp.state += 1;
            stream.read_start(lp, |_, _, _| {}).unwrap();
        })
        .unwrap();
        let addr = listener.local_addr(&lp).unwrap();
        let waker = Waker::new(&mut lp, |_, _| {});
        let waker_clone = waker.clone();

        let clients: Vec<StdStream> = (0..3).map(|_| StdStream::connect(addr).unwrap()).collect();
        // Bounded in time, not in a count a busy machine could exhaust.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lp.state < 3 && std::time::Instant::now() < deadline {
            lp.run(RunMode::NoWait).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(lp.state, 3, "{backend:?}: accepted");

        drop(lp);
        for mut client in clients.iter() {
            client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            match client.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("{backend:?}: the client should see the end, got {other:?}"),
            }
        }
        // The clone still holds the poller; waking it wakes no one and must not fail badly.
        let _ = waker_clone.wake();
        drop((waker, waker_clone));
        drop(clients);
        assert_eq!(open_fds(), before, "{backend:?}: descriptors left behind");
    }
}
