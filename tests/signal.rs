//! Signal watchers: real signals sent to this process with `kill(1)`, and the simulator's
//! `raise_signal`.
//!
//! Signals are process-wide and the tests of this binary run in parallel threads, so each
//! test that sends a real signal uses its own (USR1, USR2, HUP, WINCH, URG), and the tests about
//! the process's fate (SIGTERM's default action) run in child processes.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use evloop::sim::Sim;
use evloop::{Loop, RunMode, Signal};

mod common;

/// Sends `sig` ("USR1", ...) to this process; `kill` has returned once it is sent.
fn kill(sig: &str) {
    let status = Command::new("kill").args([&format!("-{sig}"), &std::process::id().to_string()]).status();
    assert!(status.expect("run kill(1)").success(), "kill -{sig} failed");
}

/// Runs `step` until it returns true, for 10 s at most.
fn until(what: &str, mut step: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !step() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `lp` without blocking until `done` holds of its state, for 10 s at most.
fn run_until<S>(what: &str, lp: &mut Loop<S>, done: impl Fn(&S) -> bool) {
    until(what, || {
        lp.run(RunMode::NoWait).unwrap();
        done(&lp.state)
    });
}

/// A loop whose state counts the calls of each of its watchers.
fn counting(lp: &mut Loop<Vec<u32>>, signum: i32) -> Signal {
    let i = lp.state.len();
    lp.state.push(0);
    let w = Signal::new(lp, move |lp, _, n| {
        assert_eq!(n, signum);
        lp.state[i] += 1;
    });
    w.start(lp, signum).unwrap();
    w
}

#[test]
fn every_watcher_of_every_loop_gets_every_delivery() {
    let mut a = Loop::with_state(Vec::new()).unwrap();
    let mut b = Loop::with_state(Vec::new()).unwrap();
    counting(&mut a, Signal::SIGUSR1);
    counting(&mut a, Signal::SIGUSR1);
    counting(&mut b, Signal::SIGUSR1);
    for round in 1..=2 {
        kill("USR1");
        until("SIGUSR1 on both loops", || {
            a.run(RunMode::NoWait).unwrap();
            b.run(RunMode::NoWait).unwrap();
            a.state == [round, round] && b.state == [round]
        });
    }
}

#[test]
fn a_blocked_loop_wakes_for_a_signal() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let w = counting(&mut lp, Signal::SIGWINCH);
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        kill("WINCH");
    });
    // A timer bounds the blocking run: it fails the test rather than hanging.
    let guard = evloop::Timer::new(&mut lp, |_, _| panic!("no SIGWINCH within 10 s"));
    guard.start(&mut lp, Duration::from_secs(10), Duration::ZERO).unwrap();
    guard.unref(&mut lp).unwrap();
    // `Once` may also return early, when a signal meant for another test interrupts its wait.
    while lp.state != [1] {
        lp.run(RunMode::Once).unwrap();
    }
    sender.join().unwrap();
    assert_eq!(lp.state, [1]);
    // A started watcher keeps the loop alive, as in libuv; unref lets it go.
    assert!(lp.alive());
    w.unref(&mut lp).unwrap();
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn a_oneshot_watcher_stops_after_the_first_delivery() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let steady = counting(&mut lp, Signal::SIGUSR2);
    let once = Signal::new(&mut lp, |lp, w, _| {
        assert!(!w.is_active(lp), "stopped before its callback runs");
        lp.state[1] += 1;
    });
    lp.state.push(0);
    once.start_oneshot(&mut lp, Signal::SIGUSR2).unwrap();
    kill("USR2");
    run_until("the first SIGUSR2", &mut lp, |s| s[0] == 1);
    assert_eq!(lp.state, [1, 1]);
    assert!(!once.is_active(&lp));
    assert_eq!(once.signum(&lp).unwrap(), None);
    kill("USR2");
    run_until("the second SIGUSR2", &mut lp, |s| s[0] == 2);
    assert_eq!(lp.state, [2, 1], "the one-shot watcher ran again");
    steady.close(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn a_stopped_watcher_is_not_called() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let stopped = counting(&mut lp, Signal::SIGHUP);
    counting(&mut lp, Signal::SIGHUP);
    stopped.stop(&mut lp).unwrap();
    assert!(!stopped.is_active(&lp));
    kill("HUP");
    run_until("SIGHUP", &mut lp, |s| s[1] == 1);
    // Another iteration, in case the stopped one were only late.
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, [0, 1], "the stopped watcher was called");
    // Started again, it is called again.
    stopped.start(&mut lp, Signal::SIGHUP).unwrap();
    kill("HUP");
    run_until("SIGHUP again", &mut lp, |s| s[1] == 2);
    assert_eq!(lp.state, [1, 2]);
}

#[test]
fn forbidden_and_out_of_range_signals_are_refused_by_name() {
    let mut lp = Loop::new().unwrap();
    let w = Signal::new(&mut lp, |_, _, _| {});
    for (signum, name) in
        [(9, "SIGKILL"), (19, "SIGSTOP"), (11, "SIGSEGV"), (7, "SIGBUS"), (4, "SIGILL"), (8, "SIGFPE")]
    {
        let err = w.start(&mut lp, signum).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        assert!(err.to_string().contains(name), "{err} does not name {name}");
        assert!(w.start_oneshot(&mut lp, signum).is_err());
    }
    for signum in [0, -1, 32, 64, 1000, i32::MIN] {
        let err = w.start(&mut lp, signum).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{signum}");
        assert!(err.to_string().contains(&signum.to_string()), "{err} does not name {signum}");
    }
    assert!(!w.is_active(&lp));
    let mut sim = Sim::new(1, ());
    assert_eq!(sim.raise_signal(9).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(sim.raise_signal(0).unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn the_simulator_delivers_raised_signals_in_virtual_time() {
    let mut sim = Sim::new(3, Vec::new());
    let int_a = counting(&mut sim, Signal::SIGINT);
    let int_b = counting(&mut sim, Signal::SIGINT);
    let term = counting(&mut sim, Signal::SIGTERM);
    let once = Signal::new(&mut sim, |lp, _, _| lp.state[3] += 1);
    sim.state.push(0);
    once.start_oneshot(&mut sim, Signal::SIGINT).unwrap();
    assert!(sim.alive(), "started watchers keep the loop alive");

    sim.raise_signal(Signal::SIGINT).unwrap();
    sim.raise_signal(Signal::SIGINT).unwrap();
    assert_eq!(sim.state, [0, 0, 0, 0], "a test action called a callback");
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [1, 1, 0, 1], "coalesced: one call per watcher");
    assert_eq!(sim.elapsed(), Duration::ZERO);

    sim.advance(Duration::from_secs(1)).unwrap();
    sim.raise_signal(Signal::SIGINT).unwrap();
    sim.raise_signal(Signal::SIGTERM).unwrap();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [2, 2, 1, 1], "the one-shot watcher ran twice");

    int_a.stop(&mut sim).unwrap();
    sim.raise_signal(Signal::SIGINT).unwrap();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [2, 3, 1, 1]);

    for w in [int_a, int_b, term, once] {
        w.unref(&mut sim).unwrap();
    }
    assert!(!sim.alive());
}

const CHILD: &str = "EVLOOP_SIGNAL_CHILD";

/// Runs the ignored test `name` in a child process and returns how it ended.
fn run_child(name: &str) -> std::process::ExitStatus {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .spawn()
        .unwrap();
    common::wait_within(&mut child, 30, &format!("the child {name}"))
}

#[test]
fn sigterm_kills_again_once_the_last_watcher_is_closed() {
    let status = run_child("sigterm_child");
    assert_eq!(status.signal(), Some(15), "the child should die by SIGTERM: {status:?}");
}

#[test]
#[ignore = "run as a child process by sigterm_kills_again_once_the_last_watcher_is_closed"]
fn sigterm_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let w = counting(&mut lp, Signal::SIGTERM);
    kill("TERM");
    run_until("SIGTERM while watched", &mut lp, |s| *s == [1]);
    w.close(&mut lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    kill("TERM");
    std::thread::sleep(Duration::from_secs(5));
    std::process::exit(0); // survived: the test fails
}

#[test]
fn the_simulator_installs_no_handler() {
    let status = run_child("sim_child");
    assert_eq!(status.signal(), Some(10), "SIGUSR1's default action should kill the child: {status:?}");
}

#[test]
#[ignore = "run as a child process by the_simulator_installs_no_handler"]
fn sim_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut sim = Sim::new(1, Vec::new());
    counting(&mut sim, Signal::SIGUSR1);
    kill("USR1");
    std::thread::sleep(Duration::from_secs(5));
    std::process::exit(0); // survived: the simulator installed a handler
}
