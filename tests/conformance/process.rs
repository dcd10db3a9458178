//! Child processes: the same bodies on the real loop, with real programs (`sh -c 'exit N'`,
//! `sleep 100`), and on the simulator, with fake programs that do the same
//! (`FakeProgram::exit_after`, a `FakeProgram` that runs until killed). tests/process.rs
//! has what only real processes can show (pipes, zombies, the environment, a host's own
//! children).

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

use evloop::sim::{FakeProgram, Sim};
use evloop::{Loop, Pipe, Process, RunMode, Signal};

/// What the bodies need of a driver.
trait Harness {
    fn lp(&mut self) -> &mut Loop<Vec<String>>;
    /// A program that exits with `code` after a short while.
    fn exits(&mut self, code: i32) -> Command;
    /// A program that runs until it is killed.
    fn forever(&mut self) -> Command;
    /// A program that writes "out" to stdout, then "err" to stderr, and exits with 2; both
    /// piped.
    fn talks(&mut self) -> Command;
    /// `cat`, stdin and stdout piped.
    fn cat(&mut self) -> Command;
    /// Runs the loop as a program's `main` would, until nothing is left to do.
    fn run_to_end(&mut self);
}

struct Real(Loop<Vec<String>>);

impl Harness for Real {
    fn lp(&mut self) -> &mut Loop<Vec<String>> {
        &mut self.0
    }
    fn exits(&mut self, code: i32) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("exit {code}")]);
        cmd
    }
    fn forever(&mut self) -> Command {
        let mut cmd = Command::new("sleep");
        cmd.arg("100");
        cmd
    }
    fn talks(&mut self) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf out; printf err >&2; exit 2"]).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
    fn cat(&mut self) -> Command {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        cmd
    }
    fn run_to_end(&mut self) {
        let guard = evloop::Timer::new(&mut self.0, |_, _| panic!("the loop ran past its bound"));
        guard.start(&mut self.0, super::BOUND, std::time::Duration::ZERO).unwrap();
        guard.unref(&mut self.0).unwrap();
        assert!(!self.0.run(RunMode::Default).unwrap());
        guard.close(&mut self.0).unwrap();
        self.0.run(RunMode::NoWait).unwrap();
    }
}

struct Simulated(Sim<Vec<String>>);

impl Harness for Simulated {
    fn lp(&mut self) -> &mut Loop<Vec<String>> {
        &mut self.0
    }
    fn exits(&mut self, code: i32) -> Command {
        let name = format!("exit-{code}");
        self.0.program(&name, FakeProgram::new().exit_after(super::ms(50), code));
        Command::new(name)
    }
    fn forever(&mut self) -> Command {
        self.0.program("forever", FakeProgram::new());
        Command::new("forever")
    }
    fn talks(&mut self) -> Command {
        let script = FakeProgram::new()
            .stdout_after(super::ms(5), "out")
            .stderr_after(super::ms(10), "err")
            .exit_after(super::ms(15), 2);
        self.0.program("talks", script);
        Command::new("talks")
    }
    fn cat(&mut self) -> Command {
        self.0.program("cat", FakeProgram::new().echo_stdin());
        Command::new("cat")
    }
    fn run_to_end(&mut self) {
        self.0.run().unwrap();
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (_, Some(signum)) => format!("signal {signum}"),
        _ => unreachable!(),
    }
}

fn log_exit(lp: &mut Loop<Vec<String>>, _: Process, status: ExitStatus) {
    let line = describe(status);
    lp.state.push(line);
}

/// Each exit callback runs once, with the code; the handle is active until then, inactive
/// after, and can be closed; a kill after the exit is ESRCH.
fn exit_codes_once_then_inactive(h: &mut impl Harness) {
    let mut three = h.exits(3);
    let mut zero = h.exits(0);
    let a = Process::spawn(h.lp(), &mut three, log_exit).unwrap().process;
    let b = Process::spawn(h.lp(), &mut zero, log_exit).unwrap().process;
    assert!(a.is_active(h.lp()) && b.is_active(h.lp()));
    assert!(h.lp().state.is_empty(), "never inside spawn");
    assert!(h.lp().alive(), "a running process keeps the loop alive");
    h.run_to_end();
    h.lp().state.sort();
    assert_eq!(h.lp().state, ["exit 0", "exit 3"]);
    assert!(!a.is_active(h.lp()) && !b.is_active(h.lp()));
    let err = a.kill(h.lp(), Signal::SIGTERM).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(3), "ESRCH: {err}");
    a.close(h.lp()).unwrap();
    b.close(h.lp()).unwrap();
    h.run_to_end();
    assert_eq!(h.lp().state.len(), 2, "nothing more");
}

/// A kill ends a running child with that signal; numbers out of range are refused first.
fn kill_reports_the_signal(h: &mut impl Harness) {
    let mut cmd = h.forever();
    let p = Process::spawn(h.lp(), &mut cmd, log_exit).unwrap().process;
    assert!(p.id(h.lp()).unwrap() > 0);
    assert_eq!(p.kill(h.lp(), 64).unwrap_err().kind(), ErrorKind::InvalidInput);
    p.kill(h.lp(), 0).unwrap();
    p.kill(h.lp(), Signal::SIGTERM).unwrap();
    h.run_to_end();
    assert_eq!(h.lp().state, ["signal 15"]);
    assert_eq!(p.kill(h.lp(), 0).unwrap_err().raw_os_error(), Some(3));
    p.close(h.lp()).unwrap();
}

/// A program that is not there: `NotFound` from spawn, no handle.
fn missing_program_is_not_found(h: &mut impl Harness) {
    let count = h.lp().handle_count();
    let err = Process::spawn(h.lp(), &mut Command::new("evloop-no-such-program"), log_exit).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.raw_os_error(), Some(2), "ENOENT, as std reports it");
    assert_eq!(h.lp().handle_count(), count);
    h.run_to_end();
}

/// An unreferenced process lets the loop end; referenced again, it keeps it until its exit.
/// A process closed before it exits keeps nothing alive, and its callback never runs.
fn unref_and_close_before_exit(h: &mut impl Harness) {
    let mut forever = h.forever();
    let p = Process::spawn(h.lp(), &mut forever, log_exit).unwrap().process;
    p.unref(h.lp()).unwrap();
    h.run_to_end();
    assert!(p.is_active(h.lp()), "still running");
    p.ref_(h.lp()).unwrap();
    p.kill(h.lp(), 9).unwrap();
    h.run_to_end();
    assert_eq!(h.lp().state, ["signal 9"]);
    let mut exits = h.exits(1);
    let q = Process::spawn(h.lp(), &mut exits, log_exit).unwrap().process;
    q.close(h.lp()).unwrap();
    h.run_to_end();
    assert_eq!(h.lp().state, ["signal 9"], "a closed handle's exit callback never runs");
    p.close(h.lp()).unwrap();
}

/// Reads `pipe` to its end into the log, as "NAME: text" once it ends.
fn collect(lp: &mut Loop<Vec<String>>, pipe: Pipe, name: &'static str) {
    let mut got = Vec::new();
    pipe.read_start(lp, move |lp, pipe, data| match data.unwrap() {
        [] => {
            lp.state.push(format!("{name}: {}", String::from_utf8_lossy(&got)));
            pipe.close(lp).unwrap();
        }
        bytes => got.extend_from_slice(bytes),
    })
    .unwrap();
}

/// A child's piped stdout and stderr are streams that end when it exits; its code comes too.
fn piped_output_then_exit(h: &mut impl Harness) {
    let mut cmd = h.talks();
    let spawned = Process::spawn(h.lp(), &mut cmd, log_exit).unwrap();
    assert!(spawned.stdin.is_none());
    collect(h.lp(), spawned.stdout.unwrap(), "stdout");
    collect(h.lp(), spawned.stderr.unwrap(), "stderr");
    h.run_to_end();
    h.lp().state.sort();
    assert_eq!(h.lp().state, ["exit 2", "stderr: err", "stdout: out"]);
    spawned.process.close(h.lp()).unwrap();
}

/// 1 MiB through `cat`, written with the high-water mark respected (`on_drain`), read back
/// byte-exact; cat exits 0 at the end of its input.
fn cat_round_trip_with_backpressure(h: &mut impl Harness) {
    const SIZE: usize = 1 << 20;
    let mut cmd = h.cat();
    let spawned = Process::spawn(h.lp(), &mut cmd, log_exit).unwrap();
    let (stdin, stdout) = (spawned.stdin.unwrap(), spawned.stdout.unwrap());
    let data = std::rc::Rc::new(super::pattern(SIZE));
    let sent = std::rc::Rc::new(std::cell::Cell::new(0));
    let pump = {
        let (data, sent) = (data.clone(), sent.clone());
        move |lp: &mut Loop<Vec<String>>, stdin: Pipe| {
            while sent.get() < SIZE {
                let end = (sent.get() + 8192).min(SIZE);
                let below = stdin.write(lp, &data[sent.get()..end]).unwrap();
                sent.set(end);
                assert!(stdin.write_queue_size(lp).unwrap() < 64 * 1024 + 8192);
                if !below {
                    lp.state.push("paused".into());
                    return;
                }
            }
            stdin
                .shutdown(lp, move |lp, r| {
                    r.unwrap();
                    stdin.close(lp).unwrap();
                })
                .unwrap();
        }
    };
    stdin.on_drain(h.lp(), pump.clone()).unwrap();
    pump(h.lp(), stdin);
    let received = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let into = received.clone();
    stdout
        .read_start(h.lp(), move |lp, stdout, d| match d.unwrap() {
            [] => stdout.close(lp).unwrap(),
            bytes => into.borrow_mut().extend_from_slice(bytes),
        })
        .unwrap();
    h.run_to_end();
    assert!(*received.borrow() == *data, "{} bytes back, not the ones sent", received.borrow().len());
    let log = &h.lp().state;
    assert!(log.iter().any(|l| l == "paused"), "the writer met the high-water mark");
    assert_eq!(log.last().map(String::as_str), Some("exit 0"));
    spawned.process.close(h.lp()).unwrap();
}

macro_rules! both {
    ($($body:ident),*) => {
        $(
            mod $body {
                #[test]
                fn real() {
                    super::$body(&mut super::Real(evloop::Loop::with_state(Vec::new()).unwrap()));
                }

                #[test]
                fn sim() {
                    super::$body(&mut super::Simulated(evloop::sim::Sim::new(11, Vec::new())));
                }
            }
        )*
    };
}

both!(
    exit_codes_once_then_inactive,
    kill_reports_the_signal,
    missing_program_is_not_found,
    unref_and_close_before_exit,
    piped_output_then_exit,
    cat_round_trip_with_backpressure
);
