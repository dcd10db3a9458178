//! Both operating-system backends, chosen explicitly, do the same work: timers, a waker from
//! another thread, TCP echo with a partial write queue, and an embedded wakeup. (CI also runs
//! the whole suite a second time with `EVLOOP_BACKEND=polling`.)

mod common;

use std::time::Duration;

use evloop::{Backend, Loop, RunMode, TcpListener, TcpStream, Timer, Waker};

fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Polling];
    #[cfg(target_os = "linux")]
    all.push(Backend::Epoll);
    all
}

#[test]
fn each_backend_runs_timers_wakers_and_tcp() {
    for backend in backends() {
        let mut lp = Loop::builder().state(Vec::<String>::new()).backend(backend).build().unwrap();
        common::time_limit(&mut lp, 30);
        let t = Timer::new(&mut lp, |lp, t| {
            lp.state.push("timer".into());
            t.close(lp).unwrap();
        });
        t.start(&mut lp, Duration::from_millis(5), Duration::ZERO).unwrap();
        let w = Waker::new(&mut lp, |lp, w| {
            lp.state.push("woken".into());
            w.close(lp).unwrap();
        });
        let remote = w.clone();
        std::thread::spawn(move || remote.wake().unwrap());

        const SIZE: usize = 4 << 20;
        let server = TcpListener::bind(&mut lp, common::any_port(), |lp, s| {
            s.read_start(lp, |lp, s, d| match d {
                Ok(b) if !b.is_empty() => drop(s.write(lp, b).unwrap()),
                _ => s.shutdown(lp, move |lp, _| s.close(lp).unwrap()).unwrap(),
            })
            .unwrap();
        })
        .unwrap();
        let addr = server.local_addr(&lp).unwrap();
        TcpStream::connect(&mut lp, addr, move |lp, c, r| {
            r.unwrap();
            c.write(lp, &common::pattern(SIZE)).unwrap();
            c.shutdown(lp, |_, r| r.unwrap()).unwrap();
            let mut got = Vec::new();
            c.read_start(lp, move |lp, c, d| {
                let d = d.unwrap();
                got.extend_from_slice(d);
                if d.is_empty() {
                    assert!(got == common::pattern(SIZE));
                    lp.state.push("echoed".into());
                    c.close(lp).unwrap();
                    server.close(lp).unwrap();
                }
            })
            .unwrap();
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        lp.state.sort();
        assert_eq!(lp.state, vec!["echoed", "timer", "woken"], "{backend:?}");
    }
}
