//! The real driver's side of child processes: spawn through std, learn of exits, reap, kill.
//!
//! **Learning of an exit.** On Linux each child gets a pidfd (`pidfd_open`), which becomes
//! readable when the child exits; it is registered level-triggered through the fd-watcher
//! path of `os.rs` (so the poller's safety argument there covers it), under the key of the
//! child's `Process` handle. Where no pidfd can be had (`ENOSYS` before Linux 5.3, other
//! systems, or `EVLOOP_CHILD_WAIT=sigchld` to test this path), the loop watches SIGCHLD
//! through an internal signal watcher and asks the driver to look at each of its own
//! children ([`OsDriver::process_reap_sigchld`]).
//!
//! **Reaping.** Always `waitpid(pid, WNOHANG)` on one child of ours (std's
//! `Child::try_wait`), never `waitpid(-1)`: a host program may have children of its own,
//! and their exit statuses are theirs.
//!
//! **No zombie.** A child whose handle closes before it exits stays here as an orphan: its
//! pidfd moves to [`ORPHAN_KEY`], whose readiness `wait` handles itself by reaping the
//! orphans that exited (with SIGCHLD, the same scan reaps them). An orphan keeps nothing
//! alive. Children still running when the driver drops (the loop was dropped) are handed
//! to one thread that waits for each in turn, so they are reaped whenever they exit; they
//! are not killed (a detached daemon should outlive its loop).
//!
//! **Kill.** `kill(pid)` only while the child is not reaped: until then its pid cannot be
//! reused (a zombie holds it), so the signal reaches the right process. After the exit was
//! collected, `ESRCH`, as libuv and Node report.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus};

use slab::Slab;

use super::os::OsDriver;
use super::{FdInterest, Readiness, SocketId};

/// A child owned by a driver.
pub(crate) type ProcId = usize;

/// What a spawn hands the loop.
pub(crate) struct SpawnedChild {
    pub(crate) id: ProcId,
    pub(crate) pid: u32,
    /// The parent's ends of the slots the `Command` asked to be piped.
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// The exit is learnt through SIGCHLD: the loop must watch it.
    pub(crate) needs_sigchld: bool,
}

/// The key of orphans' pidfds; no handle's key can be this (see `SIGNAL_KEY` in `os.rs`).
pub(crate) const ORPHAN_KEY: usize = usize::MAX - 2;

/// ESRCH: the process is gone (Linux and the BSDs agree on 3).
pub(crate) const ESRCH: i32 = 3;

/// How a child's exit becomes known.
enum Notice {
    /// Its pidfd, an fd-watcher entry of the driver.
    Pidfd(SocketId),
    /// SIGCHLD and a look at each child.
    Sigchld,
    /// Collected: nothing to watch any more.
    Done,
}

struct Entry {
    child: Child,
    notice: Notice,
    /// The key of its handle, `None` once the handle closed (an orphan).
    key: Option<usize>,
    status: Option<ExitStatus>,
}

/// The children of one real driver.
pub(crate) struct Children {
    list: Slab<Entry>,
    /// Whether to try pidfds: until `pidfd_open` says `ENOSYS` (or the environment says no).
    use_pidfd: bool,
}

impl Children {
    pub(crate) fn new() -> Children {
        let forced = std::env::var("EVLOOP_CHILD_WAIT").is_ok_and(|v| v.eq_ignore_ascii_case("sigchld"));
        Children { list: Slab::new(), use_pidfd: cfg!(target_os = "linux") && !forced }
    }
}

impl Drop for Children {
    /// Children not yet reaped go to a thread that waits for each (their pid only), so that
    /// none is left a zombie by a dropped loop.
    fn drop(&mut self) {
        let left: Vec<Child> = self.list.drain().filter(|e| e.status.is_none()).map(|e| e.child).collect();
        if left.is_empty() {
            return;
        }
        let reaper = std::thread::Builder::new().name("evloop-reaper".into()).spawn(move || {
            for mut child in left {
                let _ = child.wait();
            }
        });
        if let Err(e) = reaper {
            log::warn!("evloop: no thread to reap the children of a dropped loop: {e}");
        }
    }
}

fn gone() -> io::Error {
    io::Error::from_raw_os_error(ESRCH)
}

impl OsDriver {
    /// Spawns `cmd` with std (its errors unchanged, nothing kept on failure), and sets up
    /// how its exit will be learnt; not registered yet (see `process_watch`).
    pub(crate) fn process_spawn(&mut self, cmd: &mut Command) -> io::Result<SpawnedChild> {
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().map(OwnedFd::from);
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        let pid = child.id();
        let notice = match self.open_pidfd(&child) {
            Some(fd) => Notice::Pidfd(fd),
            None => Notice::Sigchld,
        };
        let needs_sigchld = matches!(notice, Notice::Sigchld);
        let id = self.children.list.insert(Entry { child, notice, key: None, status: None });
        Ok(SpawnedChild { id, pid, stdin, stdout, stderr, needs_sigchld })
    }

    /// The child's pidfd as an fd-watcher entry, or `None` where pidfds are not to be had.
    #[cfg(target_os = "linux")]
    fn open_pidfd(&mut self, child: &Child) -> Option<SocketId> {
        if !self.children.use_pidfd {
            return None;
        }
        let pid = rustix::process::Pid::from_child(child);
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => self.fd_open(fd).ok(),
            Err(rustix::io::Errno::NOSYS) => {
                self.children.use_pidfd = false;
                None
            }
            // EMFILE and the like: this child is watched through SIGCHLD instead.
            Err(_) => None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open_pidfd(&mut self, _child: &Child) -> Option<SocketId> {
        None
    }

    /// Registers the child's exit notice under `key`, its handle's.
    pub(crate) fn process_watch(&mut self, id: ProcId, key: usize) -> io::Result<()> {
        let Some(entry) = self.children.list.get_mut(id) else { return Err(gone()) };
        entry.key = Some(key);
        if let Notice::Pidfd(fd) = entry.notice {
            if self.fd_set_interest(fd, key, FdInterest::READABLE).is_err() {
                // The poller refused it: SIGCHLD will do, and the loop is told so.
                self.fd_close(fd);
                if let Some(entry) = self.children.list.get_mut(id) {
                    entry.notice = Notice::Sigchld;
                }
                return Err(io::Error::other("evloop: pidfd not pollable"));
            }
        }
        Ok(())
    }

    /// Collects the child's exit if it has exited: `Ok(None)` while it runs. Once
    /// collected, the status is kept and returned again.
    pub(crate) fn process_try_wait(&mut self, id: ProcId) -> io::Result<Option<ExitStatus>> {
        let Some(entry) = self.children.list.get_mut(id) else { return Err(gone()) };
        if entry.status.is_some() {
            return Ok(entry.status);
        }
        let result = entry.child.try_wait();
        if !matches!(result, Ok(None)) {
            // Exited, or (ECHILD) reaped behind our back: either way nothing more will come.
            entry.status = result.as_ref().ok().copied().flatten();
            let notice = std::mem::replace(&mut entry.notice, Notice::Done);
            if let Notice::Pidfd(fd) = notice {
                self.fd_close(fd);
            }
        }
        result
    }

    /// Sends `signum` (0: only checks that the child is there) unless its exit was
    /// collected (`ESRCH` then). The number is checked by the loop.
    pub(crate) fn process_kill(&mut self, id: ProcId, signum: i32) -> io::Result<()> {
        let Some(entry) = self.children.list.get(id) else { return Err(gone()) };
        if entry.status.is_some() || matches!(entry.notice, Notice::Done) {
            return Err(gone());
        }
        let pid = rustix::process::Pid::from_child(&entry.child);
        if signum == 0 {
            return Ok(rustix::process::test_kill_process(pid)?);
        }
        let sig = rustix::process::Signal::from_named_raw(signum).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("evloop: signal {signum} cannot be sent"))
        })?;
        Ok(rustix::process::kill_process(pid, sig)?)
    }

    /// The handle closed: forgets a collected child, keeps a running one as an orphan.
    pub(crate) fn process_release(&mut self, id: ProcId) {
        let Some(entry) = self.children.list.get_mut(id) else { return };
        if matches!(entry.notice, Notice::Done) {
            self.children.list.remove(id);
            return;
        }
        entry.key = None;
        if let Notice::Pidfd(fd) = entry.notice {
            // Out and in again: the same interest under a new key is no change to
            // `fd_set_interest`, and the old key must not be reported any more.
            let _ = self.fd_set_interest(fd, ORPHAN_KEY, FdInterest::NONE);
            let _ = self.fd_set_interest(fd, ORPHAN_KEY, FdInterest::READABLE);
        }
        // It may have exited already, its notice consumed by an event the loop dropped.
        self.reap_orphans(false);
    }

    /// Reaps the orphans that exited: those with a pidfd, or (`sigchld`) those without.
    fn reap_orphans(&mut self, sigchld: bool) {
        let orphans: Vec<ProcId> = self
            .children
            .list
            .iter()
            .filter(|(_, e)| e.key.is_none() && matches!(e.notice, Notice::Pidfd(_)) != sigchld)
            .map(|(id, _)| id)
            .collect();
        for id in orphans {
            if !matches!(self.process_try_wait(id), Ok(None)) {
                self.children.list.remove(id);
            }
        }
    }

    /// Handles the orphans' readiness among what a wait found (called by `wait`).
    pub(crate) fn take_orphan_events(&mut self, ready: &mut Vec<Readiness>, start: usize) {
        if !ready[start..].iter().any(|r| r.key == ORPHAN_KEY) {
            return;
        }
        let mut kept = start;
        for i in start..ready.len() {
            if ready[i].key != ORPHAN_KEY {
                ready[kept] = ready[i];
                kept += 1;
            }
        }
        ready.truncate(kept);
        self.reap_orphans(false);
    }

    /// After a SIGCHLD: collects every child watched that way that exited, reaping the
    /// orphans, and appends the keys of the others' handles to `exited`.
    pub(crate) fn process_reap_sigchld(&mut self, exited: &mut Vec<usize>) {
        self.reap_orphans(true);
        let waiting: Vec<(ProcId, usize)> = self
            .children
            .list
            .iter()
            .filter(|(_, e)| matches!(e.notice, Notice::Sigchld))
            .filter_map(|(id, e)| Some((id, e.key?)))
            .collect();
        for (id, key) in waiting {
            if !matches!(self.process_try_wait(id), Ok(None)) {
                exited.push(key);
            }
        }
    }
}
