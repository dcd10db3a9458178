//! The simulated side of child processes: scripted fake programs in virtual time.
//!
//! The test registers what a program does under its name ([`FakeProgram`]); spawning a
//! `Command` whose program is that name starts a fake process that runs the script against
//! the virtual clock. Nothing touches the operating system: no process, no signal. A fake
//! process's exit is reported to the loop like a pidfd's readiness (level-triggered, under its
//! handle's key) from the moment its exit time is reached, until it is collected.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use slab::Slab;

use super::world::World;
use super::SimDriver;
use crate::driver::{ProcId, Readiness, SpawnedChild, ESRCH};

/// What a fake program does, in virtual time from its spawn: registered with
/// [`Sim::program`](crate::sim::Sim::program).
///
/// Without [`exit_after`](FakeProgram::exit_after) or
/// [`killed_after`](FakeProgram::killed_after) it runs until a signal kills it. A signal
/// sent with [`Process::kill`](crate::Process::kill) kills it at once (its exit status says
/// which signal), unless the script [ignores](FakeProgram::ignore_signal) that signal or its
/// default action leaves a process alive (SIGCHLD, SIGCONT, SIGURG, SIGWINCH; and SIGSTOP,
/// SIGTSTP, SIGTTIN, SIGTTOU, since stopping is not modelled); signal 0 only checks that it
/// is there, as on Unix. A fake program has no stdio: [`Spawned`](crate::Spawned)'s pipes are
/// `None` whatever the `Command` asked.
///
/// ```
/// use std::time::Duration;
/// use evloop::sim::{FakeProgram, Sim};
///
/// let mut sim = Sim::new(1, ());
/// sim.program("compile", FakeProgram::new().exit_after(Duration::from_secs(3), 0));
/// sim.program("daemon", FakeProgram::new().ignore_signal(1));
/// ```
#[derive(Clone, Debug, Default)]
pub struct FakeProgram {
    end: Option<(u64, FakeEnd)>,
    ignored: Vec<i32>,
}

/// How a fake process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FakeEnd {
    Code(i32),
    Signal(i32),
}

impl FakeEnd {
    /// The wait status Unix reports: the code in the second byte, or the signal's number.
    fn status(self) -> ExitStatus {
        match self {
            FakeEnd::Code(code) => ExitStatus::from_raw((code & 0xff) << 8),
            FakeEnd::Signal(signum) => ExitStatus::from_raw(signum & 0x7f),
        }
    }
}

impl FakeProgram {
    /// A program that runs until it is killed.
    pub fn new() -> FakeProgram {
        FakeProgram::default()
    }

    /// Exits with `code` (0 to 255, as Unix keeps the low byte) once `after` has passed.
    pub fn exit_after(mut self, after: Duration, code: i32) -> FakeProgram {
        self.end = Some((crate::sim::ms(after), FakeEnd::Code(code)));
        self
    }

    /// Dies of signal `signum` once `after` has passed, as if something else killed it.
    pub fn killed_after(mut self, after: Duration, signum: i32) -> FakeProgram {
        self.end = Some((crate::sim::ms(after), FakeEnd::Signal(signum)));
        self
    }

    /// Ignores `signum`: a kill with it changes nothing (SIGKILL cannot be ignored).
    pub fn ignore_signal(mut self, signum: i32) -> FakeProgram {
        self.ignored.push(signum);
        self
    }
}

/// One running (or exited, not yet collected) fake process.
struct FakeProc {
    /// When it ends and how, if the script or a signal says so.
    end: Option<(u64, FakeEnd)>,
    ignored: Vec<i32>,
    key: Option<usize>,
    collected: bool,
}

/// The fake programs of a world and their processes.
pub(crate) struct FakeProcs {
    programs: HashMap<OsString, FakeProgram>,
    procs: Slab<FakeProc>,
    next_pid: u32,
}

impl Default for FakeProcs {
    fn default() -> Self {
        FakeProcs { programs: HashMap::new(), procs: Slab::new(), next_pid: 1000 }
    }
}

impl FakeProcs {
    /// Registers (or replaces) the script of `name`.
    pub(crate) fn register(&mut self, name: OsString, program: FakeProgram) {
        self.programs.insert(name, program);
    }

    /// The next moment after `now` at which a fake process ends.
    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        self.procs.iter().filter_map(|(_, p)| p.end.map(|(at, _)| at)).filter(|&at| at > now).min()
    }
}

/// Exits reached and not collected, reported under each process's key as a readable
/// descriptor (level-triggered, as a pidfd is).
pub(crate) fn collect_exits(w: &World, ready: &mut Vec<Readiness>) {
    for (_, p) in &w.procs.procs {
        if let (Some(key), Some((at, _)), false) = (p.key, p.end, p.collected) {
            if at <= w.now {
                ready.push(Readiness::again(key));
            }
        }
    }
}

/// SIGKILL, which no script can ignore.
const SIGKILL: i32 = 9;

/// Signals whose default action leaves a process alive, on Linux: SIGCHLD, SIGCONT, SIGURG,
/// SIGWINCH (ignored) and SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU (stop it; the simulation does
/// not model a stopped process).
const SURVIVED: [i32; 8] = [17, 18, 23, 28, 19, 20, 21, 22];

fn gone() -> io::Error {
    io::Error::from_raw_os_error(ESRCH)
}

impl SimDriver {
    pub(crate) fn process_spawn(&mut self, cmd: &mut Command) -> io::Result<SpawnedChild> {
        let mut w = self.world.borrow_mut();
        let Some(program) = w.procs.programs.get(cmd.get_program()).cloned() else {
            // What std's spawn reports for a program that is not there (ENOENT).
            return Err(io::Error::from_raw_os_error(2));
        };
        let now = w.now;
        let pid = w.procs.next_pid;
        w.procs.next_pid += 1;
        let end = program.end.map(|(after, how)| (now.saturating_add(after), how));
        let id =
            w.procs.procs.insert(FakeProc { end, ignored: program.ignored, key: None, collected: false });
        w.record(id, "spawn", 0);
        Ok(SpawnedChild { id, pid, stdin: None, stdout: None, stderr: None, needs_sigchld: false })
    }

    pub(crate) fn process_watch(&mut self, id: ProcId, key: usize) -> io::Result<()> {
        let mut w = self.world.borrow_mut();
        let p = w.procs.procs.get_mut(id).ok_or_else(gone)?;
        p.key = Some(key);
        Ok(())
    }

    pub(crate) fn process_try_wait(&mut self, id: ProcId) -> io::Result<Option<ExitStatus>> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let p = w.procs.procs.get_mut(id).ok_or_else(gone)?;
        match p.end {
            Some((at, how)) if at <= now => {
                let first = !p.collected;
                p.collected = true;
                if first {
                    w.record(id, "exit", 0);
                }
                Ok(Some(how.status()))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn process_kill(&mut self, id: ProcId, signum: i32) -> io::Result<()> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let p = w.procs.procs.get_mut(id).ok_or_else(gone)?;
        if p.collected {
            return Err(gone());
        }
        let ended = p.end.is_some_and(|(at, _)| at <= now);
        // SIGKILL cannot be ignored; signal 0 only checks; signals that do not end a process
        // by default (they are ignored, or stop it, which is not modelled) change nothing.
        let harmless = signum == 0 || SURVIVED.contains(&signum);
        if harmless || ended || (signum != SIGKILL && p.ignored.contains(&signum)) {
            return Ok(());
        }
        p.end = Some((now, FakeEnd::Signal(signum)));
        w.record(id, "killed", signum as usize);
        Ok(())
    }

    pub(crate) fn process_release(&mut self, id: ProcId) {
        let mut w = self.world.borrow_mut();
        // A fake process leaves no zombie: forgotten with its handle.
        if w.procs.procs.try_remove(id).is_some() {
            w.record(id, "release", 0);
        }
    }

    /// Fake processes report their exits like pidfds: nothing to do after a SIGCHLD.
    pub(crate) fn process_reap_sigchld(&mut self, _exited: &mut Vec<usize>) {}
}
