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
use std::os::fd::OwnedFd;
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
    /// (after, stderr rather than stdout, bytes)
    writes: Vec<(u64, bool, Vec<u8>)>,
    echo: bool,
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

    /// Writes `bytes` to its stdout once `after` has passed: the program's
    /// [`Spawned::stdout`](crate::Spawned::stdout) is a pipe it reads them from (arriving
    /// as the pipe's window allows). Its stdout ends when it exits.
    pub fn stdout_after(mut self, after: Duration, bytes: impl Into<Vec<u8>>) -> FakeProgram {
        self.writes.push((crate::sim::ms(after), false, bytes.into()));
        self
    }

    /// Writes `bytes` to its stderr once `after` has passed ([`Spawned::stderr`](crate::Spawned::stderr)).
    pub fn stderr_after(mut self, after: Duration, bytes: impl Into<Vec<u8>>) -> FakeProgram {
        self.writes.push((crate::sim::ms(after), true, bytes.into()));
        self
    }

    /// Behaves as `cat`: what the program writes to its stdin
    /// ([`Spawned::stdin`](crate::Spawned::stdin)) comes back on its stdout, and at the end
    /// of its stdin it exits with 0 (unless the script ended it earlier). Its stdin is never
    /// read faster than its stdout is, so backpressure reaches the writer.
    pub fn echo_stdin(mut self) -> FakeProgram {
        self.echo = true;
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
    /// Writes still to come: (at, stderr, bytes).
    writes: Vec<(u64, bool, Vec<u8>)>,
    echo: bool,
    /// The connections of its fake pipes (`sim/pipe.rs`): the process is side 1.
    stdin: Option<usize>,
    stdout: Option<usize>,
    stderr: Option<usize>,
    /// Its stdio was closed at its exit.
    closed: bool,
    /// Its handle closed: it runs on, unseen, until its exit closes its stdio.
    released: bool,
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

    /// The next moment after `now` at which a fake process writes or ends.
    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        let ends = self.procs.iter().filter_map(|(_, p)| p.end.map(|(at, _)| at));
        let writes = self.procs.iter().flat_map(|(_, p)| p.writes.iter().map(|&(at, _, _)| at));
        ends.chain(writes).filter(|&at| at > now).min()
    }
}

/// Runs the fake processes' scripts up to now: due writes into their pipes, stdin echoed to
/// stdout, an echo's exit at the end of its stdin, and every pipe closed at the exit.
/// Returns whether any pipe got something to move.
pub(crate) fn run_scripts(w: &mut World) -> bool {
    let World { procs, conns, now, .. } = w;
    let now = *now;
    let mut moved = false;
    for (_, p) in procs.procs.iter_mut() {
        let (stdout, stderr) = (p.stdout, p.stderr);
        p.writes.retain(|(at, to_stderr, bytes)| {
            if *at > now {
                return true;
            }
            if let Some(conn) = if *to_stderr { stderr } else { stdout } {
                conns[conn].peer_outbox.extend(bytes);
                moved = true;
            }
            false
        });
        if let (true, Some(input), Some(output)) = (p.echo, p.stdin, p.stdout) {
            // As much as stdout has room for: a full stdout stops cat reading its stdin.
            let room = conns[output].pipes[1].room().saturating_sub(conns[output].peer_outbox.len());
            let take = room.min(conns[input].peer_inbox.len());
            if take > 0 {
                let data: Vec<u8> = conns[input].peer_inbox.drain(..take).collect();
                conns[output].peer_outbox.extend(data);
                moved = true;
            }
            conns[input].peer_paused = !conns[input].peer_inbox.is_empty();
            let eof = conns[input].pipes[0].ended(now) && conns[input].peer_inbox.is_empty();
            if eof && p.end.is_none() {
                p.end = Some((now, FakeEnd::Code(0)));
            }
        }
        if !p.closed && p.end.is_some_and(|(at, _)| at <= now) {
            p.closed = true;
            moved = true;
            for conn in [p.stdout, p.stderr].into_iter().flatten() {
                conns[conn].peer_fin_pending = true;
            }
            if let Some(conn) = p.stdin {
                // The reader goes: the program's next write fails with `BrokenPipe`.
                let c = &mut conns[conn];
                let unread = !c.peer_inbox.is_empty() || c.pipes[0].bytes_unread() > 0;
                c.close_side(1, now, unread);
            }
        }
    }
    procs.procs.retain(|_, p| !(p.released && p.closed));
    moved
}

/// A fake pipe for one stdio slot: the program's end (`writes`: the program writes it, as
/// stdin) and the connection of the process's end.
fn fake_stdio(w: &mut World, writes: bool) -> io::Result<(OwnedFd, usize)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let fd = if writes { write } else { read };
    let conn = w.add_fake_pipe(&fd)?;
    Ok((fd, conn))
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
        let writes: Vec<_> = program
            .writes
            .into_iter()
            .map(|(after, to, bytes)| (now.saturating_add(after), to, bytes))
            .collect();
        // The slots the script uses are piped (std's `Command` does not tell what it asked).
        let (uses_stdout, uses_stderr) = (writes.iter().any(|w| !w.1), writes.iter().any(|w| w.1));
        let stdin = program.echo.then(|| fake_stdio(&mut w, true)).transpose()?;
        let stdout = (program.echo || uses_stdout).then(|| fake_stdio(&mut w, false)).transpose()?;
        let stderr = uses_stderr.then(|| fake_stdio(&mut w, false)).transpose()?;
        let proc = FakeProc {
            end,
            ignored: program.ignored,
            key: None,
            collected: false,
            writes,
            echo: program.echo,
            stdin: stdin.as_ref().map(|s| s.1),
            stdout: stdout.as_ref().map(|s| s.1),
            stderr: stderr.as_ref().map(|s| s.1),
            closed: false,
            released: false,
        };
        let id = w.procs.procs.insert(proc);
        w.record(id, "spawn", 0);
        Ok(SpawnedChild {
            id,
            pid,
            stdin: stdin.map(|s| s.0),
            stdout: stdout.map(|s| s.0),
            stderr: stderr.map(|s| s.0),
            needs_sigchld: false,
        })
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
        // A fake process leaves no zombie: it is forgotten once its handle closed and its
        // exit closed its pipes (until then its script runs on).
        let Some(p) = w.procs.procs.get_mut(id) else { return };
        p.released = true;
        p.key = None;
        if p.closed {
            w.procs.procs.remove(id);
        }
        w.record(id, "release", 0);
    }

    /// Fake processes report their exits like pidfds: nothing to do after a SIGCHLD.
    pub(crate) fn process_reap_sigchld(&mut self, _exited: &mut Vec<usize>) {}
}
