//! Child processes (libuv's `uv_process_t`, Node's `child_process.spawn`, asyncio's
//! subprocess transports): the loop's side.
//!
//! The driver spawns, learns of exits, reaps and signals (`driver/process.rs` on the
//! operating system, `driver/sim/process.rs` with scripted fake programs); this file keeps
//! the handle: its state, the exit callback, and the internal SIGCHLD watcher the loop opens
//! when a child's exit cannot be learnt through a pidfd.

use std::io;
use std::process::{Command, ExitStatus};

use crate::driver::ProcId;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};
use crate::net::pipe::Pipe;
use crate::signal::Signal;

/// A child process started by the loop, and its exit (libuv's `uv_process_t`, Node's
/// `ChildProcess`).
///
/// [`spawn`](Process::spawn) takes a [`std::process::Command`], with everything it can say:
/// arguments, environment (`env`, `env_remove`, `env_clear`), working directory, each of
/// stdin, stdout and stderr inherited, `Stdio::null()`, piped (a [`Pipe`] stream each, in
/// [`Spawned`]: writes with the high-water mark and `on_drain`, reads with
/// `read_stop` / `read_resume`) or an existing descriptor (`Stdio::from(OwnedFd)`), and on
/// Unix (`CommandExt`) `uid`, `gid`, `process_group` and `arg0`.
///
/// - **Errors come from `spawn`**, as std's `spawn` reports them (a program that is not
///   there: `NotFound`; not executable: `PermissionDenied`; a working directory that is not
///   there: `NotFound`; `uid` without the right: `PermissionDenied`), and no handle is left
///   behind.
/// - **The exit callback** runs once, from the loop (never inside `spawn`), with the child's
///   [`ExitStatus`]: its `code()`, or on Unix its `signal()` (`ExitStatusExt`). After it the
///   handle is inactive and can be closed; until then it is active and, referenced, keeps
///   [`RunMode::Default`](crate::RunMode::Default) running.
/// - **Only its own children are reaped**, each by its pid (`waitpid(pid, WNOHANG)`), never
///   with `waitpid(-1)`: a host program's own children and their statuses stay the host's.
///   On Linux the exit is learnt through a pidfd in the poller; elsewhere (or before Linux
///   5.3) through SIGCHLD, which the loop then watches with an internal [`Signal`]
///   watcher (so a program's own SIGCHLD watchers still get every delivery).
///   `EVLOOP_CHILD_WAIT=sigchld` in the environment forces that path on Linux too.
/// - **No zombie.** A handle closed before its child exits does not leave it a zombie: the
///   loop keeps watching for that exit and reaps it in whichever of its iterations follows
///   (it must still run, for something else), without being kept alive by it. A loop
///   dropped while children run leaves them running (they are not killed) and hands them to
///   a thread that reaps each when it exits.
/// - **Kill** sends any signal while the exit has not been collected; a zombie keeps its pid,
///   so the signal cannot reach a process that reused it. After the exit callback's status
///   was collected, [`kill`](Process::kill) fails with `ESRCH` (raw OS error 3), as libuv and
///   Node report.
/// - **Detached** (a daemon that outlives the program): `CommandExt::process_group(0)` puts
///   it in a process group of its own (a Ctrl-C in the terminal does not reach it), and
///   [`unref`](Process::unref) lets the loop end without waiting for it.
/// - On a [`Sim`](crate::sim::Sim), a program registered with
///   [`Sim::program`](crate::sim::Sim::program) runs its script in virtual time; any other
///   program is `NotFound`.
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::Command;
/// use evloop::{Loop, Process, RunMode, Signal};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// Process::spawn(&mut lp, Command::new("sh").args(["-c", "exit 3"]), |lp, process, status| {
///     lp.state.push(status.code());
///     process.close(lp).unwrap();
/// })?;
/// let sleeper = Process::spawn(&mut lp, Command::new("sleep").arg("100"), |lp, _, status| {
///     lp.state.push(status.signal());
/// })?;
/// sleeper.process.kill(&mut lp, Signal::SIGTERM)?;
/// lp.run(RunMode::Default)?;
/// lp.state.sort();
/// assert_eq!(lp.state, [Some(3), Some(15)]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Piped stdio, as streams: `tr` reads what the program writes and its answer comes back.
///
/// ```
/// use std::process::{Command, Stdio};
/// use evloop::{Loop, Process, RunMode};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// let mut tr = Command::new("tr");
/// tr.args(["a-z", "A-Z"]).stdin(Stdio::piped()).stdout(Stdio::piped());
/// let spawned = Process::spawn(&mut lp, &mut tr, |lp, process, status| {
///     assert!(status.success());
///     process.close(lp).unwrap();
/// })?;
/// let (stdin, stdout) = (spawned.stdin.unwrap(), spawned.stdout.unwrap());
/// stdin.write(&mut lp, b"shout")?;
/// stdin.shutdown(&mut lp, move |lp, _| stdin.close(lp).unwrap())?; // tr's end of input
/// stdout.read_start(&mut lp, |lp, stdout, data| match data.unwrap() {
///     [] => stdout.close(lp).unwrap(),
///     bytes => lp.state.extend_from_slice(bytes),
/// })?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, b"SHOUT");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Process {
    handle: Handle,
}

common_handle_methods!(Process, Process);

/// What [`Process::spawn`] returns: the handle, and a [`Pipe`] stream for each stdio slot
/// that the `Command` asked to be piped (`Stdio::piped()`), `None` for the others: `stdin`
/// to write (with the write queue, high-water mark and `on_drain` of any stream; `shutdown`
/// or `close` gives the child the end of its input), `stdout` and `stderr` to read
/// (`read_start`; `Ok(&[])` at their end). They are handles of their own, independent of
/// the process's: close each when done.
///
/// On a simulated loop a fake program's pipes are the slots its script uses
/// ([`FakeProgram`](crate::sim::FakeProgram)), whatever the `Command` says, since std's
/// `Command` does not tell its stdio settings.
#[derive(Copy, Clone, Debug)]
#[non_exhaustive]
pub struct Spawned {
    /// The child's handle.
    pub process: Process,
    /// The write end of the child's stdin, if piped.
    pub stdin: Option<Pipe>,
    /// The read end of the child's stdout, if piped.
    pub stdout: Option<Pipe>,
    /// The read end of the child's stderr, if piped.
    pub stderr: Option<Pipe>,
}

/// The loop's side of one process.
pub(crate) struct ProcessState {
    /// The driver's id of the child.
    id: ProcId,
    pid: u32,
    /// Set once the exit is collected: what the callback is handed.
    status: Option<ExitStatus>,
}

/// The loop's bookkeeping for processes: the internal SIGCHLD watcher, once needed.
#[derive(Default)]
pub(crate) struct Processes {
    sigchld: Option<Signal>,
}

impl Process {
    /// Starts `command`'s program as a child; `on_exit` runs once, from the loop, with its
    /// exit status. The error is std's `spawn`'s (see [`Process`]), with nothing left open.
    ///
    /// The `Command` is used as std's `spawn` uses it: it can be changed and spawned again.
    pub fn spawn<S>(
        lp: &mut Loop<S>,
        command: &mut Command,
        on_exit: impl FnOnce(&mut Loop<S>, Process, ExitStatus) + 'static,
    ) -> io::Result<Spawned> {
        let child = lp.driver.process_spawn(command)?;
        let state = ProcessState { id: child.id, pid: child.pid, status: None };
        // The callback needs the id, which exists only once the slot does.
        let handle = lp.open_handle(HandleKind::Process, Box::new(|_, _| {}), Extra::Process(state));
        let process = Process { handle };
        let mut on_exit = Some(on_exit);
        let callback = move |lp: &mut Loop<S>, h: Handle| {
            let status = lp.handles.get(h).and_then(|b| b.extra.process()).and_then(|st| st.status);
            if let (Some(status), Some(on_exit)) = (status, on_exit.take()) {
                on_exit(lp, process, status);
            }
        };
        if let Some(body) = lp.handles.get_mut(handle) {
            body.callback = Some(Box::new(callback));
        }
        lp.handles.update(handle, |b| b.active = true);
        let watched = lp.driver.process_watch(child.id, handle.to_key());
        if watched.is_err() || child.needs_sigchld {
            if let Err(e) = lp.watch_sigchld() {
                // The exit could never be reported: take the child back rather than leave it.
                let _ = lp.driver.process_kill(child.id, Signal::SIGKILL_NUMBER);
                let _ = process.close(lp);
                return Err(e);
            }
        }
        let mut pipes = [None; 3];
        for (slot, fd) in [child.stdin, child.stdout, child.stderr].into_iter().enumerate() {
            let Some(fd) = fd else { continue };
            match Pipe::open(lp, fd) {
                Ok(pipe) => pipes[slot] = Some(pipe),
                Err(e) => {
                    // No half-made result: the child goes, with what was opened for it.
                    for pipe in pipes.into_iter().flatten() {
                        let _ = pipe.close(lp);
                    }
                    let _ = lp.driver.process_kill(child.id, Signal::SIGKILL_NUMBER);
                    let _ = process.close(lp);
                    return Err(e);
                }
            }
        }
        let [stdin, stdout, stderr] = pipes;
        Ok(Spawned { process, stdin, stdout, stderr })
    }

    /// The child's process id. It stays the same after the exit; once the exit callback
    /// ran, the id may belong to another process.
    pub fn id<S>(&self, lp: &Loop<S>) -> io::Result<u32> {
        Ok(lp.handles.state(self.handle, HandleKind::Process, Extra::process)?.pid)
    }

    /// Sends signal `signum` (`Signal::SIGTERM`, `libc::SIGKILL`, ...; 0 only checks that the
    /// child is there) to the child, while its exit has not been collected. After that, an
    /// error with raw OS error `ESRCH` (3): the pid may be another process's by then. A
    /// number outside 0 to 31: `InvalidInput`.
    pub fn kill<S>(&self, lp: &mut Loop<S>, signum: i32) -> io::Result<()> {
        let st = lp.handles.state(self.handle, HandleKind::Process, Extra::process)?;
        if !(0..32).contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("evloop: signal {signum} is out of range (0 to 31)"),
            ));
        }
        if st.status.is_some() {
            return Err(io::Error::from_raw_os_error(crate::driver::ESRCH));
        }
        let id = st.id;
        lp.driver.process_kill(id, signum)
    }
}

impl Process {
    /// Sets `command` up so that its child starts a session of its own (`setsid`): the
    /// detached mode of libuv (`UV_PROCESS_DETACHED`) and Node (`detached: true`). The child
    /// leads a new session and process group, with no controlling terminal, so neither a
    /// Ctrl-C nor the terminal's hang-up reaches it. Pair it with
    /// [`unref`](Process::unref) for a daemon the loop need not wait for. Returns `command`.
    ///
    /// ```
    /// use std::process::Command;
    /// use evloop::{Loop, Process, RunMode};
    ///
    /// let mut lp = Loop::new()?;
    /// let mut daemon = Command::new("true");
    /// Process::detach(&mut daemon);
    /// Process::spawn(&mut lp, &mut daemon, |lp, process, _| process.close(lp).unwrap())?;
    /// lp.run(RunMode::Default)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn detach(command: &mut Command) -> &mut Command {
        use std::os::unix::process::CommandExt;
        #[allow(unsafe_code)]
        // SAFETY: `pre_exec` runs the closure in the child, between fork and exec, where only
        // async-signal-safe work is allowed. The closure makes one `setsid` system call
        // (async-signal-safe in POSIX) through rustix, which calls the kernel directly,
        // allocates nothing and takes no lock; its error becomes an `io::Error` from the raw
        // number, which allocates nothing either. It captures nothing.
        unsafe {
            command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from))
        }
    }
}

impl<S> Extra<S> {
    fn process(&self) -> Option<&ProcessState> {
        match self {
            Extra::Process(st) => Some(st),
            _ => None,
        }
    }

    fn process_mut(&mut self) -> Option<&mut ProcessState> {
        match self {
            Extra::Process(st) => Some(st),
            _ => None,
        }
    }
}

impl<S> Loop<S> {
    /// A child's exit may have come (its pidfd is readable, or SIGCHLD arrived): collects it
    /// and calls the exit callback.
    pub(crate) fn process_ready(&mut self, h: Handle) {
        let Some(st) = self.handles.get_mut(h).filter(|b| !b.closing).and_then(|b| b.extra.process_mut())
        else {
            return;
        };
        if st.status.is_some() {
            return;
        }
        let id = st.id;
        match self.driver.process_try_wait(id) {
            Ok(None) => {}
            Ok(Some(status)) => {
                if let Some(st) = self.handles.get_mut(h).and_then(|b| b.extra.process_mut()) {
                    st.status = Some(status);
                }
                self.handles.update(h, |b| b.active = false);
                self.dispatch(h);
            }
            Err(e) => {
                // ECHILD: something else in the program reaped it (`waitpid(-1)`); its status
                // is lost, and nothing more can happen to the handle.
                log::warn!("evloop: the exit of child {h:?} cannot be collected: {e}");
                self.handles.update(h, |b| b.active = false);
            }
        }
    }

    /// Closes a process handle: a child still running is reaped later by the driver.
    pub(crate) fn close_process(&mut self, h: Handle) {
        if let Some(id) = self.handles.get(h).and_then(|b| b.extra.process()).map(|st| st.id) {
            self.driver.process_release(id);
        }
    }

    /// Opens (once) the internal, unreferenced SIGCHLD watcher for children whose exit no
    /// pidfd reports, and has it look at them on the next iteration: a SIGCHLD that came
    /// before it was watching is not lost.
    fn watch_sigchld(&mut self) -> io::Result<()> {
        let watcher = match self.processes.sigchld {
            Some(w) => w,
            None => {
                let w = Signal::new(self, |lp, _, _| {
                    let mut exited = Vec::new();
                    lp.driver.process_reap_sigchld(&mut exited);
                    for key in exited {
                        let h = lp.handles.handle_for_key(key);
                        lp.process_ready(h);
                    }
                });
                self.handles.update(w.handle(), |b| b.internal = true);
                if let Err(e) = w.start(self, Signal::SIGCHLD).and_then(|()| w.unref(self)) {
                    let _ = w.close(self);
                    return Err(e);
                }
                self.processes.sigchld = Some(w);
                w
            }
        };
        self.nudge_signal(watcher.handle());
        Ok(())
    }
}

/// `SIGKILL`'s number, which no signal watcher may watch and so `Signal` does not offer.
impl Signal {
    pub(crate) const SIGKILL_NUMBER: i32 = signal_hook::consts::signal::SIGKILL;
}
