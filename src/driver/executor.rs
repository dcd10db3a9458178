//! The pool's executor seam: the jobs the loop's pool hands over, what comes back, and the
//! enum that runs them, on worker threads ([`threads`](super::threads)) or in the simulated
//! world ([`sim::pool`](super::sim::pool)).
//!
//! The loop's side (requests, their callbacks, cancellation's bookkeeping) lives in
//! `crate::pool`; it hands each job over with its lane, its request id and its [`JobState`],
//! and later takes the ids of finished jobs with their outputs.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::sim::pool::SimExecutor;
use super::sim::world::World;
use super::threads::Threads;
use super::Notifier;

/// What a job returns.
pub(crate) type Output = Box<dyn Any + Send>;
/// A job for the pool.
pub(crate) type Job = Box<dyn FnOnce() -> Output + Send>;
/// A finished job: its request id and its output, or its panic message (a cancelled job is
/// reported with an empty message; its state says it was cancelled).
pub(crate) type Finished = (usize, Result<Output, String>);

/// Which lane a job waits in.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Lane {
    /// File system and user work.
    Fast,
    /// Name resolution: may take seconds, so it occupies at most half the workers.
    Slow,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// Why a job could not be cancelled.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum NotCancelled {
    /// It was cancelled already.
    Cancelled,
    /// It has started (it may have finished).
    Started,
}

/// A job's state, shared by the loop, which may cancel it while it is queued, and whoever
/// runs it: whichever moves it out of "queued" first wins.
#[derive(Clone, Debug)]
pub(crate) struct JobState(Arc<AtomicU8>);

impl JobState {
    /// A queued job's state.
    pub(crate) fn queued() -> JobState {
        JobState(Arc::new(AtomicU8::new(QUEUED)))
    }

    /// Marks the job as running; false if it was cancelled (then it must not run).
    pub(crate) fn start(&self) -> bool {
        self.0.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Cancels the job if it has not started.
    pub(crate) fn cancel(&self) -> Result<(), NotCancelled> {
        match self.0.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(CANCELLED) => Err(NotCancelled::Cancelled),
            Err(_) => Err(NotCancelled::Started),
        }
    }

    /// Whether the job is still queued (neither started nor cancelled).
    pub(crate) fn is_queued(&self) -> bool {
        self.0.load(Ordering::Acquire) == QUEUED
    }

    /// Whether the job was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
    }
}

/// The message of a job's panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// What runs the pool's jobs.
pub(crate) enum Executor {
    /// Worker threads, started on first use.
    Threads(Threads),
    /// The simulated pool: jobs run on the loop thread, in the world's virtual time.
    Sim(SimExecutor),
}

impl Executor {
    /// `size` worker threads, started on first use.
    pub(crate) fn threads(size: usize) -> Executor {
        Executor::Threads(Threads::new(size))
    }

    /// The simulated world's pool.
    pub(crate) fn simulated(world: Rc<RefCell<World>>) -> Executor {
        Executor::Sim(SimExecutor::new(world))
    }

    /// Queues a job. The workers start (on first use) with `notifier`, which they raise when
    /// a job finishes; they are woken by [`signal`](Executor::signal), not here.
    pub(crate) fn submit(
        &mut self,
        notifier: &Arc<Notifier>,
        lane: Lane,
        id: usize,
        state: JobState,
        job: Job,
    ) -> io::Result<()> {
        match self {
            Executor::Threads(t) => t.submit(notifier, lane, id, state, job),
            Executor::Sim(s) => {
                s.submit(id, state, job);
                Ok(())
            }
        }
    }

    /// Wakes idle workers for the jobs queued since the last call.
    pub(crate) fn signal(&mut self) {
        if let Executor::Threads(t) = self {
            t.signal();
        }
    }

    /// Reports the job `id`, whose state was just cancelled, as finished, so that its
    /// request completes from the loop like any other.
    pub(crate) fn report_cancelled(&mut self, id: usize) {
        match self {
            Executor::Threads(t) => t.report_cancelled(id),
            Executor::Sim(s) => s.report_cancelled(id),
        }
    }

    /// Swaps the list of finished jobs, in finishing order, with `out` (which is empty).
    pub(crate) fn take_finished(&mut self, out: &mut Vec<Finished>) {
        match self {
            Executor::Threads(t) => t.take_finished(out),
            Executor::Sim(s) => s.take_finished(out),
        }
    }

    /// Worker threads started (none for the simulated pool).
    pub(crate) fn thread_count(&self) -> usize {
        match self {
            Executor::Threads(t) => t.count(),
            Executor::Sim(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_cancelled_or_started_never_both() {
        let s = JobState::queued();
        assert!(s.is_queued());
        assert_eq!(s.cancel(), Ok(()));
        assert!(s.is_cancelled());
        assert!(!s.start(), "a cancelled job never starts");
        assert_eq!(s.cancel(), Err(NotCancelled::Cancelled));

        let s = JobState::queued();
        assert!(s.start());
        assert_eq!(s.cancel(), Err(NotCancelled::Started));
        assert!(!s.is_queued() && !s.is_cancelled());
    }
}
