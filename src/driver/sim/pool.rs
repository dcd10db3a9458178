//! The simulated thread pool, the executor of a simulated loop: deterministic, on the loop
//! thread.
//!
//! Jobs run while virtual time stands still, in the order the mode says: `Inline` runs every
//! job at the next poll in submission order, `Seeded` runs them in an order drawn from the
//! seed, `Manual` leaves them until the test runs them. A delay fault makes jobs finish that
//! much virtual time after they were submitted; a failure fault makes them fail.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::world::World;
use super::Rng;
use crate::driver::executor::{panic_message, Finished, Job, JobState};

/// How the simulated pool runs jobs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolMode {
    /// Every job runs at the next poll, in submission order.
    #[default]
    Inline,
    /// Jobs due at a poll run in an order drawn from the seed.
    Seeded,
    /// Jobs wait until the test runs them (`Sim::run_pool_job`).
    Manual,
}

struct SimJob {
    id: usize,
    state: JobState,
    job: Job,
    due: u64,
}

#[derive(Default)]
pub(crate) struct SimPool {
    pub(crate) mode: PoolMode,
    queue: VecDeque<SimJob>,
    pub(crate) done: Vec<Finished>,
    /// Virtual time every job takes (a slow-disk fault).
    pub(crate) delay: u64,
    /// This many next jobs fail instead of running.
    pub(crate) fail_next: usize,
}

impl SimPool {
    /// Queues a job; `extra` is added virtual time (a chaos delay).
    /// Queues a job; `extra` is added virtual time (a chaos delay). A delay too long for the
    /// clock makes the job due at the end of time.
    pub(crate) fn submit(&mut self, now: u64, extra: u64, id: usize, state: JobState, job: Job) {
        let due = now.saturating_add(self.delay).saturating_add(extra);
        self.queue.push_back(SimJob { id, state, job, due });
    }

    pub(crate) fn has_done(&self) -> bool {
        !self.done.is_empty()
    }

    /// Whether a job would run at a poll now.
    pub(crate) fn runnable(&self, now: u64) -> bool {
        self.mode != PoolMode::Manual && self.queue.iter().any(|j| j.due <= now)
    }

    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        if self.mode == PoolMode::Manual {
            return None;
        }
        self.queue.iter().map(|j| j.due).filter(|&d| d > now).min()
    }

    /// Jobs still queued (not run, not cancelled).
    pub(crate) fn queued(&self) -> usize {
        self.queue.iter().filter(|j| j.state.is_queued()).count()
    }

    /// Runs the jobs due now, as the mode says.
    pub(crate) fn run_due(&mut self, now: u64, rng: &mut Rng) {
        if self.mode == PoolMode::Manual {
            return;
        }
        let mut due: Vec<SimJob> = Vec::new();
        let mut later = VecDeque::new();
        for job in self.queue.drain(..) {
            if job.due <= now {
                due.push(job);
            } else {
                later.push_back(job);
            }
        }
        self.queue = later;
        if self.mode == PoolMode::Seeded {
            // Fisher-Yates with the simulation's generator.
            for i in (1..due.len()).rev() {
                due.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
        }
        for job in due {
            self.run(job);
        }
    }

    /// Runs the oldest queued job now, whatever the mode; false if there is none.
    pub(crate) fn run_next(&mut self) -> bool {
        while let Some(job) = self.queue.pop_front() {
            if job.state.is_queued() {
                self.run(job);
                return true;
            }
        }
        false
    }

    fn run(&mut self, job: SimJob) {
        if !job.state.start() {
            return; // cancelled: its cancellation is already reported
        }
        let result = if self.fail_next > 0 {
            self.fail_next -= 1;
            Err("evloop::sim: injected pool failure".to_string())
        } else {
            let work = job.job;
            panic::catch_unwind(AssertUnwindSafe(work)).map_err(|p| panic_message(&*p))
        };
        self.done.push((job.id, result));
    }
}

/// The executor of a simulated loop: jobs go to the world's pool, which runs them when the
/// simulated driver polls.
pub(crate) struct SimExecutor(Rc<RefCell<World>>);

impl SimExecutor {
    pub(crate) fn new(world: Rc<RefCell<World>>) -> SimExecutor {
        SimExecutor(world)
    }

    /// Queues a job, due after the pool's delay (and, under chaos, up to 100 ms more).
    pub(crate) fn submit(&mut self, id: usize, state: JobState, job: Job) {
        let mut w = self.0.borrow_mut();
        let now = w.now;
        // Chaos: a job may take up to 100 ms of virtual time.
        let extra = if w.chaos_hit() { w.rng.between_1_and(100) as u64 } else { 0 };
        w.pool.submit(now, extra, id, state, job);
    }

    /// Reports a cancelled job as finished.
    pub(crate) fn report_cancelled(&mut self, id: usize) {
        self.0.borrow_mut().pool.done.push((id, Err(String::new())));
    }

    /// Swaps the list of finished jobs with `out`.
    pub(crate) fn take_finished(&mut self, out: &mut Vec<Finished>) {
        std::mem::swap(&mut self.0.borrow_mut().pool.done, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::executor::Output;

    fn job() -> Job {
        Box::new(|| Box::new(()) as Output)
    }

    #[test]
    fn a_delay_too_long_for_the_clock_saturates() {
        let mut pool = SimPool { delay: u64::MAX, ..SimPool::default() };
        pool.submit(5, 100, 0, JobState::queued(), job());
        assert_eq!(pool.next_event(5), Some(u64::MAX));
        assert!(!pool.runnable(u64::MAX - 1));
    }

    #[test]
    fn a_cancelled_job_is_not_run() {
        let mut pool = SimPool::default();
        let state = JobState::queued();
        pool.submit(0, 0, 7, state.clone(), job());
        assert_eq!(pool.queued(), 1);
        state.cancel().unwrap();
        assert_eq!(pool.queued(), 0);
        assert!(!pool.run_next());
        assert!(pool.done.is_empty(), "the canceller reports a cancelled job, not the pool");
    }
}
