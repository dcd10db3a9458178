//! Child processes: the same bodies on the real loop, with real programs (`sh -c 'exit N'`,
//! `sleep 100`), and on the simulator, with fake programs that do the same
//! (`FakeProgram::exit_after`, a `FakeProgram` that runs until killed). tests/process.rs
//! has what only real processes can show (pipes, zombies, the environment, a host's own
//! children).

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use evloop::sim::{FakeProgram, Sim};
use evloop::{Loop, Process, RunMode, Signal};

/// What the bodies need of a driver.
trait Harness {
    fn lp(&mut self) -> &mut Loop<Vec<String>>;
    /// A program that exits with `code` after a short while.
    fn exits(&mut self, code: i32) -> Command;
    /// A program that runs until it is killed.
    fn forever(&mut self) -> Command;
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
    unref_and_close_before_exit
);
