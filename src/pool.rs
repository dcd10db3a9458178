//! The thread pool: blocking work runs on worker threads and its result comes back to the loop
//! as a callback (libuv's `uv_queue_work`).
//!
//! Workers start on first use. Jobs wait in two FIFO lanes: the fast lane (file system, user
//! work) and the slow lane (name resolution), which may occupy at most half the workers so a
//! burst of slow lookups cannot starve file work (libuv's rule). Results go to a shared list;
//! the first result of a batch raises the loop's notifier, so completions arrive in one
//! coalesced wakeup and are drained in one pass per iteration.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use slab::Slab;

use crate::driver::sim::world::World;
use crate::driver::Notifier;
use crate::error::cancelled;
use crate::event_loop::Loop;

/// Default number of workers when neither the builder nor `EVLOOP_THREADPOOL_SIZE` says.
pub(crate) const DEFAULT_SIZE: usize = 4;
/// Most workers a pool may have.
pub(crate) const MAX_SIZE: usize = 1024;

pub(crate) type Output = Box<dyn Any + Send>;
pub(crate) type Job = Box<dyn FnOnce() -> Output + Send>;
pub(crate) type After<S> = Box<dyn FnOnce(&mut Loop<S>, io::Result<Output>)>;
/// A finished request: its callback and result.
pub(crate) type Completed<S> = (After<S>, io::Result<Output>);

pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const CANCELLED: u8 = 2;

/// Which lane a job waits in.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Lane {
    Fast,
    Slow,
}

struct Queued {
    id: usize,
    seq: u64,
    state: Arc<AtomicU8>,
    job: Job,
}

struct Queue {
    fast: VecDeque<Queued>,
    slow: VecDeque<Queued>,
    slow_running: usize,
    /// Workers waiting on the condition variable. Signalling costs a futex system call
    /// whether anyone waits or not, so it is done only when someone does (as libuv does).
    idle: usize,
    seq: u64,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work_ready: Condvar,
    /// Finished jobs: the request id and the job's output, or its panic message.
    done: Mutex<Vec<(usize, Result<Output, String>)>>,
    notifier: Arc<Notifier>,
    max_slow: usize,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a push or pop).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A request on the pool: cancel it while it is still queued.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct WorkRequest {
    id: usize,
    generation: u64,
}

struct Request<S> {
    generation: u64,
    state: Arc<AtomicU8>,
    after: After<S>,
}

/// The loop's side of the pool.
pub(crate) struct Pool<S> {
    size: usize,
    shared: Option<Arc<Shared>>,
    /// The simulated pool, for a simulated loop: jobs run in the world, not on threads.
    sim: Option<Rc<RefCell<World>>>,
    workers: Vec<JoinHandle<()>>,
    requests: Slab<Request<S>>,
    generation: u64,
    /// Jobs were queued since the workers were last signalled.
    unsignalled: bool,
    /// Spare vector swapped with the shared done list, so draining allocates nothing.
    drained: Vec<(usize, Result<Output, String>)>,
}

impl<S> Pool<S> {
    pub(crate) fn new(size: Option<usize>) -> Pool<S> {
        let size = configured_size(size, std::env::var("EVLOOP_THREADPOOL_SIZE").ok().as_deref());
        Pool {
            size,
            shared: None,
            sim: None,
            workers: Vec::new(),
            requests: Slab::new(),
            generation: 0,
            unsignalled: false,
            drained: Vec::new(),
        }
    }

    /// A pool whose jobs the simulated world runs.
    pub(crate) fn simulated(world: Rc<RefCell<World>>) -> Pool<S> {
        let mut pool = Pool::new(Some(1));
        pool.sim = Some(world);
        pool
    }

    /// Requests submitted and not yet completed: they keep the loop alive.
    pub(crate) fn in_flight(&self) -> usize {
        self.requests.len()
    }

    fn start(&mut self, notifier: &Arc<Notifier>) -> io::Result<Arc<Shared>> {
        if let Some(shared) = &self.shared {
            return Ok(shared.clone());
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                fast: VecDeque::new(),
                slow: VecDeque::new(),
                slow_running: 0,
                idle: 0,
                seq: 0,
                shutdown: false,
            }),
            work_ready: Condvar::new(),
            done: Mutex::new(Vec::new()),
            notifier: notifier.clone(),
            max_slow: self.size.div_ceil(2),
        });
        for i in 0..self.size {
            let worker = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("evloop-pool-{i}"))
                .spawn(move || work_loop(&worker))?;
            self.workers.push(handle);
        }
        log::debug!("thread pool started with {} workers", self.size);
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    pub(crate) fn submit(
        &mut self,
        notifier: &Arc<Notifier>,
        lane: Lane,
        job: Job,
        after: After<S>,
    ) -> io::Result<WorkRequest> {
        self.generation += 1;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let id = self.requests.insert(Request { generation: self.generation, state: state.clone(), after });
        if let Some(world) = &self.sim {
            let mut w = world.borrow_mut();
            let now = w.now;
            // Chaos: a job may take up to 100 ms of virtual time.
            let extra = if w.chaos_hit() { w.rng.between_1_and(100) as u64 } else { 0 };
            w.pool.submit(now, extra, id, state, job);
            return Ok(WorkRequest { id, generation: self.generation });
        }
        let shared = match self.start(notifier) {
            Ok(shared) => shared,
            Err(e) => {
                self.requests.remove(id);
                return Err(e);
            }
        };
        let mut queue = lock(&shared.queue);
        queue.seq += 1;
        let queued = Queued { id, seq: queue.seq, state, job };
        match lane {
            Lane::Fast => queue.fast.push_back(queued),
            Lane::Slow => queue.slow.push_back(queued),
        }
        drop(queue);
        // Workers are signalled once per loop iteration (`signal_workers`, before the poll),
        // not once per job: a callback that submits many jobs costs one wakeup, not many.
        self.unsignalled = true;
        Ok(WorkRequest { id, generation: self.generation })
    }

    /// Wakes idle workers for the jobs queued since the last call. The loop calls it before
    /// every poll, the only place it blocks, so no queued job waits for a wakeup that never
    /// comes.
    pub(crate) fn signal_workers(&mut self) {
        if !std::mem::take(&mut self.unsignalled) {
            return;
        }
        let Some(shared) = &self.shared else { return };
        let queue = lock(&shared.queue);
        let wanted = queue.idle.min(queue.fast.len() + queue.slow.len());
        drop(queue);
        match wanted {
            0 => {}
            1 => shared.work_ready.notify_one(),
            _ => shared.work_ready.notify_all(),
        }
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
        match r.state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // Report it like a finished job, through the same list, so `after` runs from
                // the loop in completion order and never inside this call.
                if let Some(world) = &self.sim {
                    world.borrow_mut().pool.done.push((req.id, Err(String::new())));
                } else if let Some(shared) = &self.shared {
                    lock(&shared.done).push((req.id, Err(String::new())));
                    shared.notifier.raise_quietly();
                }
                Ok(())
            }
            Err(CANCELLED) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: work request already cancelled"))
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "evloop: work request is running and cannot be cancelled",
            )),
        }
    }

    /// Takes every finished request with its `after` callback and result, in finishing order.
    pub(crate) fn take_completions(&mut self, out: &mut VecDeque<Completed<S>>) {
        if let Some(world) = &self.sim {
            std::mem::swap(&mut world.borrow_mut().pool.done, &mut self.drained);
        } else if let Some(shared) = &self.shared {
            std::mem::swap(&mut *lock(&shared.done), &mut self.drained);
        } else {
            return;
        }
        for (id, result) in self.drained.drain(..) {
            let Some(req) = self.requests.try_remove(id) else { continue };
            let result = match result {
                Ok(output) => Ok(output),
                Err(_) if req.state.load(Ordering::Acquire) == CANCELLED => Err(cancelled()),
                Err(panic) => Err(io::Error::other(format!("evloop: work panicked: {panic}"))),
            };
            out.push_back((req.after, result));
        }
    }

    /// Number of worker threads started.
    pub(crate) fn threads(&self) -> usize {
        self.workers.len()
    }
}

impl<S> Drop for Pool<S> {
    /// Joins the workers: queued jobs are dropped without running, running ones finish first.
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            lock(&shared.queue).shutdown = true;
            shared.work_ready.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker: takes the oldest runnable job, one per lock, so a queued job waits for no
/// particular worker (it starts as soon as any is free, in FIFO order) and stays cancellable
/// until it starts.
fn work_loop(shared: &Shared) {
    let mut finished_slow = false;
    loop {
        let mut queue = lock(&shared.queue);
        if finished_slow {
            queue.slow_running -= 1;
        }
        let (queued, slow) = loop {
            if queue.shutdown {
                return;
            }
            if let Some(picked) = take_next(&mut queue, shared.max_slow) {
                break picked;
            }
            queue.idle += 1;
            queue = shared.work_ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.idle -= 1;
        };
        // The slow slot this worker freed can take a slow job that an idle worker may run.
        let wake =
            finished_slow && queue.idle > 0 && !queue.slow.is_empty() && queue.slow_running < shared.max_slow;
        drop(queue);
        if wake {
            shared.work_ready.notify_one();
        }
        finished_slow = slow;
        if queued.state.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            continue; // cancelled: its cancellation is already reported
        }
        let job = queued.job;
        let result = panic::catch_unwind(AssertUnwindSafe(job)).map_err(|payload| panic_message(&*payload));
        let mut done = lock(&shared.done);
        let first = done.is_empty();
        done.push((queued.id, result));
        drop(done);
        if first {
            let _ = shared.notifier.notify();
        }
    }
}

/// The oldest runnable job: slow jobs only while fewer than `max_slow` run.
fn take_next(queue: &mut Queue, max_slow: usize) -> Option<(Queued, bool)> {
    let slow_ok = queue.slow_running < max_slow && !queue.slow.is_empty();
    let take_slow = match (queue.fast.front(), slow_ok) {
        (Some(f), true) => queue.slow.front().is_some_and(|s| s.seq < f.seq),
        (Some(_), false) => false,
        (None, ok) => ok,
    };
    if take_slow {
        queue.slow_running += 1;
        queue.slow.pop_front().map(|q| (q, true))
    } else {
        queue.fast.pop_front().map(|q| (q, false))
    }
}

/// The pool size: the builder's, else the environment's, else the default; 1..=1024.
fn configured_size(builder: Option<usize>, env: Option<&str>) -> usize {
    builder.or_else(|| env.and_then(|v| v.trim().parse().ok())).unwrap_or(DEFAULT_SIZE).clamp(1, MAX_SIZE)
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
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
    /// `EVLOOP_THREADPOOL_SIZE` environment variable, else 4 (at most 1,024). Work is taken
    /// in FIFO order.
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

    /// Number of worker threads the pool has started (zero before first use).
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

    fn queued(seq: u64) -> Queued {
        Queued {
            id: seq as usize,
            seq,
            state: Arc::new(AtomicU8::new(QUEUED)),
            job: Box::new(|| Box::new(()) as Output),
        }
    }

    fn queue(fast: &[u64], slow: &[u64]) -> Queue {
        Queue {
            fast: fast.iter().map(|&s| queued(s)).collect(),
            slow: slow.iter().map(|&s| queued(s)).collect(),
            slow_running: 0,
            idle: 0,
            seq: 100,
            shutdown: false,
        }
    }

    #[test]
    fn jobs_are_taken_oldest_first_across_lanes() {
        let mut q = queue(&[2, 4], &[1, 3]);
        let order: Vec<u64> = std::iter::from_fn(|| take_next(&mut q, 10).map(|(j, _)| j.seq)).collect();
        assert_eq!(order, vec![1, 2, 3, 4]);
    }

    #[test]
    fn slow_jobs_occupy_at_most_half_the_workers() {
        // Pool of 4: at most 2 slow jobs at once, however old they are.
        let mut q = queue(&[10, 11], &[1, 2, 3, 4]);
        let max_slow = 4usize.div_ceil(2);
        let picked: Vec<(u64, bool)> =
            std::iter::from_fn(|| take_next(&mut q, max_slow).map(|(j, slow)| (j.seq, slow))).collect();
        assert_eq!(picked, vec![(1, true), (2, true), (10, false), (11, false)]);
        assert_eq!(q.slow_running, 2);
        // One slow job finishes: the next slow one may start.
        q.slow_running -= 1;
        assert_eq!(take_next(&mut q, max_slow).map(|(j, s)| (j.seq, s)), Some((3, true)));
        assert!(take_next(&mut q, max_slow).is_none());
    }

    #[test]
    fn a_pool_of_one_still_runs_slow_jobs() {
        let mut q = queue(&[], &[1]);
        assert!(take_next(&mut q, 1usize.div_ceil(2)).is_some());
    }

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
