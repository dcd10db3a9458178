//! Scripted fake processes on the simulator: exits in virtual time, to the millisecond;
//! kills and ignored signals; the same trace for the same seed.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use evloop::sim::{check_determinism, FakeProgram, Sim};
use evloop::{Loop, Process, Signal};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// (virtual ms, code or -signal) of each exit, in order.
type Exits = Vec<(u64, i32)>;

fn on_exit(lp: &mut Loop<Exits>, p: Process, status: std::process::ExitStatus) {
    let what = status.code().unwrap_or_else(|| -status.signal().unwrap());
    let now = lp.now();
    lp.state.push((now, what));
    p.close(lp).unwrap();
}

#[test]
fn exits_come_at_their_virtual_time() {
    let mut sim = Sim::new(3, Exits::new());
    sim.program("fast", FakeProgram::new().exit_after(ms(250), 0));
    sim.program("slow", FakeProgram::new().exit_after(ms(1_500), 4));
    sim.program("crash", FakeProgram::new().killed_after(ms(700), 11));
    for name in ["slow", "fast", "crash"] {
        Process::spawn(&mut sim, &mut Command::new(name), on_exit).unwrap();
    }
    sim.advance(ms(249)).unwrap();
    assert!(sim.state.is_empty());
    sim.run().unwrap();
    assert_eq!(sim.state, [(250, 0), (700, -11), (1_500, 4)]);
    assert_eq!(sim.elapsed(), ms(1_500), "no time passes after the last exit");
}

#[test]
fn a_kill_ends_a_fake_unless_it_ignores_the_signal() {
    let mut sim = Sim::new(4, Exits::new());
    sim.program("stubborn", FakeProgram::new().ignore_signal(Signal::SIGTERM).exit_after(ms(10_000), 0));
    let p = Process::spawn(&mut sim, &mut Command::new("stubborn"), on_exit).unwrap().process;
    sim.advance(ms(100)).unwrap();
    p.kill(&mut sim, Signal::SIGTERM).unwrap();
    sim.advance(ms(100)).unwrap();
    assert!(sim.state.is_empty(), "SIGTERM is ignored");
    p.kill(&mut sim, 9).unwrap();
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [(200, -9)], "SIGKILL cannot be ignored; it dies at once");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let trace = check_determinism(21, |sim: &mut Sim<Exits>| {
        for (i, ms_) in [30, 10, 20].into_iter().enumerate() {
            let name = format!("job{i}");
            sim.program(&name, FakeProgram::new().exit_after(ms(ms_), i as i32));
            Process::spawn(sim, &mut Command::new(&name), on_exit).unwrap();
        }
        sim.program("forever", FakeProgram::new());
        let p = Process::spawn(sim, &mut Command::new("forever"), on_exit).unwrap().process;
        sim.advance(ms(15)).unwrap();
        p.kill(sim, Signal::SIGINT).unwrap();
        sim.run().unwrap();
        assert_eq!(sim.state, [(10, 1), (15, -2), (20, 2), (30, 0)]);
    })
    .unwrap();
    let kinds: Vec<&str> =
        trace.iter().map(|e| e.kind).filter(|k| ["spawn", "exit", "killed"].contains(k)).collect();
    assert_eq!(kinds, ["spawn", "spawn", "spawn", "spawn", "exit", "killed", "exit", "exit", "exit"]);
}

/// Signals whose default action leaves a process alive do not end a fake either.
#[test]
fn harmless_signals_leave_a_fake_running() {
    let mut sim = Sim::new(5, Exits::new());
    sim.program("worker", FakeProgram::new().exit_after(ms(1_000), 0));
    let p = Process::spawn(&mut sim, &mut Command::new("worker"), on_exit).unwrap().process;
    for signum in [0, Signal::SIGCHLD, Signal::SIGWINCH, Signal::SIGURG] {
        p.kill(&mut sim, signum).unwrap();
    }
    sim.run().unwrap();
    assert_eq!(sim.state, [(1_000, 0)]);
}

/// A fake's output arrives at its virtual times, on its own pipe, and ends at its exit.
#[test]
fn output_arrives_at_its_virtual_time_and_ends_at_the_exit() {
    let mut sim = Sim::new(6, Exits::new());
    let script = FakeProgram::new()
        .stdout_after(ms(100), "a")
        .stdout_after(ms(250), "bc")
        .stderr_after(ms(50), "warn")
        .exit_after(ms(300), 0);
    sim.program("talker", script);
    let spawned = Process::spawn(&mut sim, &mut Command::new("talker"), on_exit).unwrap();
    assert!(spawned.stdin.is_none(), "the script does not read");
    for (pipe, tag) in [(spawned.stdout.unwrap(), 1), (spawned.stderr.unwrap(), 2)] {
        pipe.read_start(&mut sim, move |lp, pipe, data| {
            let now = lp.now();
            match data.unwrap() {
                [] => {
                    lp.state.push((now, -tag));
                    pipe.close(lp).unwrap();
                }
                bytes => lp.state.push((now, tag * 100 + bytes.len() as i32)),
            }
        })
        .unwrap();
    }
    sim.run().unwrap();
    // (time, 100 * pipe + bytes) for data, (time, -pipe) for the end, (time, code) for the exit.
    assert_eq!(sim.state, [(50, 204), (100, 101), (250, 102), (300, 0), (300, -1), (300, -2)]);
}

/// An echoing fake reads its stdin no faster than its stdout is read: while the program does
/// not read, what it wrote (1 MiB, queued past the high-water mark) stays queued, but for
/// what the two pipes' windows (64 KiB each) and the fake's own buffer (one window read
/// from stdin, as cat's buffer) hold.
#[test]
fn an_echo_stalls_its_writer_while_its_output_is_not_read() {
    const SIZE: usize = 1 << 20;
    let mut sim = Sim::new(7, Exits::new());
    sim.program("cat", FakeProgram::new().echo_stdin());
    let spawned = Process::spawn(&mut sim, &mut Command::new("cat"), on_exit).unwrap();
    let (stdin, stdout) = (spawned.stdin.unwrap(), spawned.stdout.unwrap());
    let data = evloop_pattern(SIZE);
    assert!(!stdin.write(&mut sim, &data).unwrap(), "past the high-water mark");
    sim.advance(ms(10_000)).unwrap();
    let stuck = stdin.write_queue_size(&sim).unwrap();
    assert_eq!(stuck, SIZE - 3 * 64 * 1024, "nothing reads cat's stdout, so cat stops reading its stdin");
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let into = got.clone();
    stdout
        .read_start(&mut sim, move |lp, p, d| match d.unwrap() {
            [] => p.close(lp).unwrap(),
            bytes => into.borrow_mut().extend_from_slice(bytes),
        })
        .unwrap();
    stdin.shutdown(&mut sim, move |lp, _| stdin.close(lp).unwrap()).unwrap();
    sim.run().unwrap();
    assert!(*got.borrow() == data, "what was written came back, in order");
    assert_eq!(sim.state.len(), 1, "cat exited at the end of its input");
}

fn evloop_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
