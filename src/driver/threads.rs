//! The real executor: worker threads that run the pool's jobs.
//!
//! Workers start on first use. Jobs wait in two FIFO lanes: the fast lane (file system, user
//! work) and the slow lane (name resolution), which may occupy at most half the workers so a
//! burst of slow lookups cannot starve file work (libuv's rule). A worker takes one job per
//! lock, the oldest runnable one, so a queued job starts as soon as any worker is free, in
//! FIFO order, and stays cancellable until it starts. The worker hands its result in under
//! the same lock with which it takes its next job; the first result the loop has not seen yet
//! raises the loop's notifier, so completions arrive in one coalesced wakeup and are drained
//! in one pass per iteration.

use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::executor::{panic_message, Finished, Job, JobState, Lane};
use super::Notifier;

struct Queued {
    id: usize,
    seq: u64,
    state: JobState,
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
    /// Finished jobs, in finishing order, until the loop takes them.
    done: Vec<Finished>,
}

struct Shared {
    queue: Mutex<Queue>,
    work_ready: Condvar,
    notifier: Arc<Notifier>,
    max_slow: usize,
    /// Workers started and not yet exited: a worker that died (a panic that escaped its job
    /// guard) no longer counts, though its join handle is still kept.
    live: AtomicUsize,
}

/// Counts a worker out of [`Shared::live`] when its thread exits, however it exits.
struct LiveWorker<'a>(&'a AtomicUsize);

impl Drop for LiveWorker<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a push or pop; jobs run outside it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker threads and their queue.
pub(crate) struct Threads {
    size: usize,
    shared: Option<Arc<Shared>>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs were queued since the workers were last signalled.
    unsignalled: bool,
}

impl Threads {
    /// `size` workers (at least one), started on first use.
    pub(crate) fn new(size: usize) -> Threads {
        Threads { size: size.max(1), shared: None, workers: Vec::new(), unsignalled: false }
    }

    /// Starts the workers.
    fn start(&mut self, notifier: &Arc<Notifier>) -> io::Result<()> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                fast: VecDeque::new(),
                slow: VecDeque::new(),
                slow_running: 0,
                idle: 0,
                seq: 0,
                shutdown: false,
                done: Vec::new(),
            }),
            work_ready: Condvar::new(),
            notifier: notifier.clone(),
            max_slow: self.size.div_ceil(2),
            live: AtomicUsize::new(0),
        });
        // Kept before the spawns, so that `Drop` stops the workers started even if one fails.
        self.shared = Some(shared.clone());
        for i in 0..self.size {
            let worker = shared.clone();
            // Counted before the spawn, so that the count is right as soon as `start` returns.
            shared.live.fetch_add(1, Ordering::AcqRel);
            match std::thread::Builder::new().name(format!("evloop-pool-{i}")).spawn(move || {
                let _live = LiveWorker(&worker.live);
                work_loop(&worker)
            }) {
                Ok(handle) => self.workers.push(handle),
                Err(e) if self.workers.is_empty() => {
                    shared.live.fetch_sub(1, Ordering::AcqRel);
                    // No worker at all: the next submission tries again.
                    self.shared = None;
                    return Err(e);
                }
                Err(e) => {
                    shared.live.fetch_sub(1, Ordering::AcqRel);
                    // The workers started carry on, and queued work still runs.
                    log::warn!("thread pool started {} of {} workers: {e}", self.workers.len(), self.size);
                    break;
                }
            }
        }
        log::debug!("thread pool started with {} workers", self.workers.len());
        Ok(())
    }

    /// Queues a job in its lane. Workers are signalled once per loop iteration
    /// ([`signal`](Threads::signal), before the poll), not once per job: a callback that
    /// submits many jobs costs one wakeup, not many. A busy worker that becomes free takes
    /// it at once.
    pub(crate) fn submit(
        &mut self,
        notifier: &Arc<Notifier>,
        lane: Lane,
        id: usize,
        state: JobState,
        job: Job,
    ) -> io::Result<()> {
        if self.shared.is_none() {
            self.start(notifier)?;
        }
        // Borrowed, not cloned: an `Arc` clone per job would bounce the reference count's
        // cache line, next to the queue's lock, between the loop and the workers.
        let Some(shared) = &self.shared else {
            return Err(io::Error::other("evloop: thread pool not started"));
        };
        let mut queue = lock(&shared.queue);
        queue.seq += 1;
        let queued = Queued { id, seq: queue.seq, state, job };
        match lane {
            Lane::Fast => queue.fast.push_back(queued),
            Lane::Slow => queue.slow.push_back(queued),
        }
        drop(queue);
        self.unsignalled = true;
        Ok(())
    }

    /// Wakes idle workers for the jobs queued since the last call. The loop calls it before
    /// every poll, the only place it blocks, so no queued job waits for a wakeup that never
    /// comes.
    pub(crate) fn signal(&mut self) {
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

    /// Reports a cancelled job as finished (the job itself stays queued until a worker drops
    /// it).
    pub(crate) fn report_cancelled(&mut self, id: usize) {
        if let Some(shared) = &self.shared {
            lock(&shared.queue).done.push((id, Err(String::new())));
            // The loop is the caller: no wakeup needed, only a look at the list.
            shared.notifier.raise_quietly();
        }
    }

    /// Swaps the list of finished jobs with `out`.
    pub(crate) fn take_finished(&mut self, out: &mut Vec<Finished>) {
        if let Some(shared) = &self.shared {
            std::mem::swap(&mut lock(&shared.queue).done, out);
        }
    }

    /// Worker threads started and still running.
    pub(crate) fn count(&self) -> usize {
        self.shared.as_ref().map_or(0, |shared| shared.live.load(Ordering::Acquire))
    }
}

impl Drop for Threads {
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

/// A worker: takes the oldest runnable job, one per lock, and runs it outside the lock.
fn work_loop(shared: &Shared) {
    // The previous job's result and whether it was a slow job, handed in with the next take.
    let mut finished: Option<Finished> = None;
    let mut finished_slow = false;
    loop {
        let mut queue = lock(&shared.queue);
        let mut raise = false;
        if let Some(result) = finished.take() {
            raise = queue.done.is_empty();
            queue.done.push(result);
        }
        let freed_slow = std::mem::take(&mut finished_slow);
        if freed_slow {
            queue.slow_running -= 1;
        }
        let (queued, slow) = loop {
            if queue.shutdown {
                return;
            }
            if let Some(picked) = take_next(&mut queue, shared.max_slow) {
                break picked;
            }
            if std::mem::take(&mut raise) {
                // Nothing to run: tell the loop before sleeping, outside the lock.
                drop(queue);
                let _ = shared.notifier.notify();
                queue = lock(&shared.queue);
                continue;
            }
            queue.idle += 1;
            queue = shared.work_ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.idle -= 1;
        };
        // The slow slot this worker freed may let an idle worker take a waiting slow job.
        let wake =
            freed_slow && queue.idle > 0 && !queue.slow.is_empty() && queue.slow_running < shared.max_slow;
        drop(queue);
        if raise {
            let _ = shared.notifier.notify();
        }
        if wake {
            shared.work_ready.notify_one();
        }
        finished_slow = slow;
        if !queued.state.start() {
            continue; // cancelled: its cancellation is already reported
        }
        let job = queued.job;
        let result = panic::catch_unwind(AssertUnwindSafe(job)).map_err(|payload| panic_message(&*payload));
        finished = Some((queued.id, result));
    }
}

/// The oldest runnable job, and whether it is slow: slow jobs only while fewer than
/// `max_slow` run.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::executor::Output;

    fn queued(seq: u64) -> Queued {
        Queued { id: seq as usize, seq, state: JobState::queued(), job: Box::new(|| Box::new(()) as Output) }
    }

    fn queue(fast: &[u64], slow: &[u64]) -> Queue {
        Queue {
            fast: fast.iter().map(|&s| queued(s)).collect(),
            slow: slow.iter().map(|&s| queued(s)).collect(),
            slow_running: 0,
            idle: 0,
            seq: 100,
            shutdown: false,
            done: Vec::new(),
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
}
