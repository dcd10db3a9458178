//! The thread pool, the loop's side: blocking work runs on an executor and its result comes
//! back to the loop as a callback (libuv's `uv_queue_work`).
//!
//! This file keeps the requests (ids with generations), their `after` callbacks, cancellation
//! and the completion pass. What runs the jobs is the driver's [`Executor`]: worker threads
//! (`driver/threads.rs`: FIFO lanes, one job per lock, completions coalesced into one wakeup)
//! or the simulated pool (`driver/sim/pool.rs`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use slab::Slab;

pub(crate) use crate::driver::executor::Lane;
use crate::driver::executor::{Executor, Finished, Job, JobState, NotCancelled, Output};
use crate::driver::sim::world::World;
use crate::driver::Notifier;
use crate::error::cancelled;
use crate::event_loop::Loop;

/// Default number of workers when neither the builder nor `EVLOOP_THREADPOOL_SIZE` says.
pub(crate) const DEFAULT_SIZE: usize = 4;
/// Most workers a pool may have.
pub(crate) const MAX_SIZE: usize = 1024;

pub(crate) type After<S> = Box<dyn FnOnce(&mut Loop<S>, io::Result<Output>)>;
/// A finished request: its callback and result.
pub(crate) type Completed<S> = (After<S>, io::Result<Output>);

/// A request on the pool: cancel it while it is still queued.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct WorkRequest {
    id: usize,
    generation: u64,
}

struct Request<S> {
    generation: u64,
    state: JobState,
    after: After<S>,
}

/// The loop's side of the pool.
pub(crate) struct Pool<S> {
    executor: Executor,
    requests: Slab<Request<S>>,
    generation: u64,
    /// Spare vector swapped with the executor's finished list, so draining allocates nothing.
    drained: Vec<Finished>,
}

impl<S> Pool<S> {
    /// A pool of worker threads: `size` of them, else `EVLOOP_THREADPOOL_SIZE`, else 4.
    pub(crate) fn new(size: Option<usize>) -> Pool<S> {
        let size = configured_size(size, std::env::var("EVLOOP_THREADPOOL_SIZE").ok().as_deref());
        Pool::with_executor(Executor::threads(size))
    }

    /// A pool whose jobs the simulated world runs.
    pub(crate) fn simulated(world: Rc<RefCell<World>>) -> Pool<S> {
        Pool::with_executor(Executor::simulated(world))
    }

    fn with_executor(executor: Executor) -> Pool<S> {
        Pool { executor, requests: Slab::new(), generation: 0, drained: Vec::new() }
    }

    /// Requests submitted and not yet completed: they keep the loop alive.
    pub(crate) fn in_flight(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn submit(
        &mut self,
        notifier: &Arc<Notifier>,
        lane: Lane,
        job: Job,
        after: After<S>,
    ) -> io::Result<WorkRequest> {
        self.generation += 1;
        let state = JobState::queued();
        let id = self.requests.insert(Request { generation: self.generation, state: state.clone(), after });
        if let Err(e) = self.executor.submit(notifier, lane, id, state, job) {
            self.requests.remove(id);
            return Err(e);
        }
        Ok(WorkRequest { id, generation: self.generation })
    }

    /// Wakes idle workers for the jobs queued since the last call. The loop calls it before
    /// every poll, the only place it blocks, so no queued job waits for a wakeup that never
    /// comes.
    pub(crate) fn signal_workers(&mut self) {
        self.executor.signal();
    }

    /// Cancels a queued request: its work will never run, and its `after` callback gets a
    /// cancellation error from the loop. A running or finished request cannot be cancelled.
    pub(crate) fn cancel(&mut self, req: WorkRequest) -> io::Result<()> {
        let Some(r) = self.requests.get(req.id).filter(|r| r.generation == req.generation) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "evloop: work request already completed",
            ));
        };
        match r.state.cancel() {
            Ok(()) => {
                // Report it like a finished job, through the same list, so `after` runs from
                // the loop in completion order and never inside this call.
                self.executor.report_cancelled(req.id);
                Ok(())
            }
            Err(NotCancelled::Cancelled) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: work request already cancelled"))
            }
            Err(NotCancelled::Started) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "evloop: work request is running and cannot be cancelled",
            )),
        }
    }

    /// Takes every finished request with its `after` callback and result, in finishing order.
    pub(crate) fn take_completions(&mut self, out: &mut VecDeque<Completed<S>>) {
        self.executor.take_finished(&mut self.drained);
        for (id, result) in self.drained.drain(..) {
            let Some(req) = self.requests.try_remove(id) else { continue };
            let result = match result {
                Ok(output) => Ok(output),
                Err(_) if req.state.is_cancelled() => Err(cancelled()),
                Err(panic) => Err(io::Error::other(format!("evloop: work panicked: {panic}"))),
            };
            out.push_back((req.after, result));
        }
    }

    /// Number of worker threads started.
    pub(crate) fn threads(&self) -> usize {
        self.executor.thread_count()
    }
}

/// The pool size: the builder's, else the environment's, else the default; 1..=1024.
fn configured_size(builder: Option<usize>, env: Option<&str>) -> usize {
    builder.or_else(|| env.and_then(|v| v.trim().parse().ok())).unwrap_or(DEFAULT_SIZE).clamp(1, MAX_SIZE)
}

impl<S> Loop<S> {
    /// Runs `work` on the thread pool, then `after` on the loop thread with its result
    /// (libuv's `uv_queue_work`). `after` gets `Ok(value)`, a
    /// [`Cancelled`](crate::Cancelled) error if the request was cancelled while queued, or an
    /// error carrying the panic message if `work` panicked (the worker survives). A request
    /// in flight keeps the loop alive.
    ///
    /// Workers start on first use; their number comes from
    /// [`Builder::threadpool_size`](crate::Builder::threadpool_size), else the
    /// `EVLOOP_THREADPOOL_SIZE` environment variable, else 4 (at most 1,024). Work starts in
    /// FIFO order, each job on the first worker free, and stays cancellable until it starts.
    ///
    /// Outside `run`, work starts at once. From a callback, workers are woken when the loop
    /// next polls, once for all the work queued since (one wakeup, not one per job): a
    /// callback must not block waiting for work it queued (nor should it block at all).
    ///
    /// ```
    /// use evloop::{Loop, RunMode};
    ///
    /// let mut lp = Loop::with_state(0u64)?;
    /// lp.queue_work(|| (1..=20u64).product::<u64>(), |lp, result| lp.state = result.unwrap())?;
    /// lp.run(RunMode::Default)?;
    /// assert_eq!(lp.state, 2_432_902_008_176_640_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn queue_work<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
        after: impl FnOnce(&mut Loop<S>, io::Result<T>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.submit_work(Lane::Fast, work, after)
    }

    /// Like `queue_work`, on the chosen lane.
    pub(crate) fn submit_work<T: Send + 'static>(
        &mut self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
        after: impl FnOnce(&mut Loop<S>, io::Result<T>) + 'static,
    ) -> io::Result<WorkRequest> {
        let job: Job = Box::new(move || Box::new(work()) as Output);
        let after: After<S> = Box::new(move |lp, result| {
            let typed = result.and_then(|out| {
                out.downcast::<T>()
                    .map(|b| *b)
                    .map_err(|_| io::Error::other("evloop: work returned another type"))
            });
            after(lp, typed)
        });
        let notifier = self.driver.notifier().clone();
        let request = self.pool.submit(&notifier, lane, job, after)?;
        if !self.is_running() {
            // No poll is coming to signal the workers: the caller may wait for this work
            // before it runs the loop.
            self.pool.signal_workers();
        }
        Ok(request)
    }

    /// Cancels a request that is still queued: its work never runs and its `after` callback
    /// gets a [`Cancelled`](crate::Cancelled) error, from the loop. A request already running
    /// cannot be cancelled: this returns an error (kind `ResourceBusy`) and it completes
    /// normally. Cancelling a completed or cancelled request is an error too.
    pub fn cancel_work(&mut self, request: WorkRequest) -> io::Result<()> {
        self.pool.cancel(request)
    }

    /// Number of worker threads the pool has started that are still running (zero before
    /// first use).
    pub fn threadpool_threads(&self) -> usize {
        self.pool.threads()
    }

    /// Reports finished work: every completion found, in one pass. They are popped one at a
    /// time, so a panicking callback leaves the rest queued for the next pass.
    pub(crate) fn run_completions(&mut self) {
        if self.pool.in_flight() > 0 {
            self.pool.take_completions(&mut self.completions);
        }
        for _ in 0..self.completions.len() {
            let Some((after, result)) = self.completions.pop_front() else { break };
            self.count_event();
            after(self, result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_comes_from_the_builder_then_the_environment_then_four() {
        assert_eq!(configured_size(Some(8), Some("2")), 8);
        assert_eq!(configured_size(None, Some(" 2 ")), 2);
        assert_eq!(configured_size(None, Some("lots")), DEFAULT_SIZE);
        assert_eq!(configured_size(None, None), DEFAULT_SIZE);
        assert_eq!(configured_size(Some(0), None), 1);
        assert_eq!(configured_size(None, Some("100000")), MAX_SIZE);
    }
}
