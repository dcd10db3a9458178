//! The thread pool: results come back to the loop, FIFO, cancellation, panics, many requests,
//! the size bound.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use common::time_limit;
use evloop::{is_cancelled, Loop, RunMode};

fn pool_of<S>(threads: usize, state: S) -> Loop<S> {
    Loop::builder().state(state).threadpool_size(threads).build().unwrap()
}

#[test]
fn work_runs_off_the_loop_thread_and_after_runs_on_it() {
    let loop_thread = thread::current().id();
    let mut lp = Loop::with_state(None).unwrap();
    assert_eq!(lp.threadpool_threads(), 0, "workers start on first use");
    lp.queue_work(
        move || {
            assert_ne!(thread::current().id(), loop_thread);
            thread::current().name().map(str::to_string)
        },
        move |lp, result| {
            assert_eq!(thread::current().id(), loop_thread);
            lp.state = result.unwrap();
        },
    )
    .unwrap();
    assert!(lp.alive(), "a pending request keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(lp.state.unwrap().starts_with("evloop-pool-"));
}

#[test]
fn work_is_taken_in_fifo_order() {
    let mut lp = pool_of(1, Vec::new());
    for i in 0..100 {
        lp.queue_work(move || i, |lp, r| lp.state.push(r.unwrap())).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, (0..100).collect::<Vec<_>>());
}

/// Work queued outside `run` starts at once, even with every worker idle and waiting: a
/// program may wait for it before it runs the loop.
#[test]
fn work_queued_outside_run_starts_without_the_loop_running() {
    let mut lp = pool_of(1, 0u32);
    time_limit(&mut lp, 30);
    // The worker exists and is idle.
    lp.queue_work(|| (), |lp, r| lp.state += u32::from(r.is_ok())).unwrap();
    lp.run(RunMode::Default).unwrap();
    let (tx, rx) = mpsc::channel();
    lp.queue_work(move || tx.send(()).unwrap(), |lp, r| lp.state += u32::from(r.is_ok())).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the work started before the loop ran");
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 2);
}

#[test]
fn a_queued_request_is_cancelled_and_a_running_one_is_not() {
    let mut lp = pool_of(1, Vec::<String>::new());
    time_limit(&mut lp, 30);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (ran_tx, ran_rx) = mpsc::channel::<&str>();
    let running = lp
        .queue_work(
            move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                "running finished"
            },
            |lp, r| lp.state.push(r.unwrap().to_string()),
        )
        .unwrap();
    let queued = lp
        .queue_work(
            move || {
                ran_tx.send("the cancelled job ran").unwrap();
            },
            |lp, r| {
                lp.state.push(
                    if r.is_err_and(|e| is_cancelled(&e)) { "cancelled" } else { "not cancelled" }.into(),
                )
            },
        )
        .unwrap();
    started_rx.recv().unwrap(); // the first job holds the only worker
    lp.cancel_work(queued).unwrap();
    assert!(lp.state.is_empty(), "after never runs inside cancel");
    let busy = lp.cancel_work(running).unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::ResourceBusy);
    assert!(lp.cancel_work(queued).is_err(), "cancelled twice");
    release_tx.send(()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["cancelled", "running finished"]);
    assert!(ran_rx.try_recv().is_err(), "cancelled work never runs");
    assert!(lp.cancel_work(running).is_err(), "a completed request cannot be cancelled");
}

#[test]
fn a_panic_in_work_reaches_after_and_the_pool_keeps_its_size() {
    let mut lp = pool_of(2, Vec::new());
    time_limit(&mut lp, 60);
    lp.queue_work(|| -> u32 { panic!("disk on fire") }, |lp, r| lp.state.push(r.map_err(|e| e.to_string())))
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let err = lp.state.pop().unwrap().unwrap_err();
    assert!(err.contains("disk on fire"), "{err}");
    assert_eq!(lp.threadpool_threads(), 2, "a worker died with the panic");
    // Both workers still serve: two jobs that each wait (bounded) until the other has
    // started can both succeed only if they run at the same time, on two workers.
    let started = Count::default();
    for _ in 0..2 {
        let started = started.clone();
        lp.queue_work(
            move || {
                started.add();
                started.wait_for(2)
            },
            |lp, r| lp.state.push(r.map(|overlapped| overlapped as u32).map_err(|e| e.to_string())),
        )
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec![Ok(1), Ok(1)], "the two jobs did not run side by side");
    assert_eq!(lp.threadpool_threads(), 2);
}

#[test]
fn ten_thousand_requests_in_flight_complete_exactly_once_each() {
    const N: usize = 10_000;
    let mut lp = pool_of(4, vec![0u8; N]);
    time_limit(&mut lp, 60);
    let (tx, rx) = mpsc::channel();
    for i in 0..N {
        let tx = tx.clone();
        lp.queue_work(
            move || {
                tx.send(thread::current().id()).unwrap();
                i
            },
            |lp, r| lp.state[r.unwrap()] += 1,
        )
        .unwrap();
    }
    assert!(lp.alive());
    lp.run(RunMode::Default).unwrap();
    assert!(lp.state.iter().all(|&n| n == 1), "some request completed other than once");
    let threads: HashSet<_> = rx.try_iter().collect();
    assert!(threads.len() <= 4, "{} worker threads for a pool of 4", threads.len());
    assert_eq!(lp.threadpool_threads(), 4);
    assert!(lp.metrics().callbacks >= N as u64);
}

#[test]
fn completions_interleave_with_timers_and_never_block_them() {
    use evloop::Timer;
    let mut lp = pool_of(1, Vec::new());
    time_limit(&mut lp, 60);
    // The job runs until the timer has fired (bounded): the timer must fire while the job is
    // in flight, whatever the scheduler does with either thread.
    let fired = Count::default();
    let on_fire = fired.clone();
    let t = Timer::new(&mut lp, move |lp, _| {
        lp.state.push("timer");
        on_fire.add();
    });
    t.start(&mut lp, Duration::from_millis(1), Duration::ZERO).unwrap();
    lp.queue_work(
        move || fired.wait_for(1),
        |lp, r| lp.state.push(if r.unwrap() { "work" } else { "work alone" }),
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["timer", "work"]);
}

/// How long a test job waits for another thread before it gives up: long enough never to
/// matter when the pool is right, short enough that a broken pool fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// A count that threads raise and wait on, with a bounded wait.
#[derive(Clone, Default)]
struct Count(Arc<(Mutex<usize>, Condvar)>);

impl Count {
    fn add(&self) {
        *self.0 .0.lock().unwrap() += 1;
        self.0 .1.notify_all();
    }

    /// Waits until the count reaches `n`, for at most `PATIENCE`; whether it did.
    fn wait_for(&self, n: usize) -> bool {
        let guard = self.0 .0.lock().unwrap();
        let (guard, _) = self.0 .1.wait_timeout_while(guard, PATIENCE, |c| *c < n).unwrap();
        *guard >= n
    }
}

/// Occupies all `workers` workers with jobs that wait until the returned count is raised, and
/// returns once every one of them is running. Work queued meanwhile piles up in the queue, so
/// the workers find all of it there when they are let go.
fn hold_workers<S: 'static>(lp: &mut Loop<S>, workers: usize) -> Count {
    let running = Count::default();
    let release = Count::default();
    for _ in 0..workers {
        let (running, release) = (running.clone(), release.clone());
        lp.queue_work(
            move || {
                running.add();
                release.wait_for(1)
            },
            |_, r| assert!(r.unwrap(), "a holding job was never released"),
        )
        .unwrap();
    }
    assert!(running.wait_for(workers), "the workers never all started");
    release
}

/// libuv's `threadpool_cancel`: with every worker busy, queued work is cancelled, never runs,
/// and its `after` gets the cancellation. A worker takes one job at a time, so work is still
/// queued (and cancellable) until a worker actually starts it, even when the queue was long
/// at the moment a worker became free.
#[test]
fn queued_work_stays_cancellable_until_a_worker_starts_it() {
    #[derive(Default)]
    struct Seen {
        cancelled: usize,
        completed: usize,
    }
    let mut lp = pool_of(4, Seen::default());
    time_limit(&mut lp, 60);
    let gate = hold_workers(&mut lp, 4);
    let blocking = Count::default();
    let release = Count::default();
    for _ in 0..4 {
        let (blocking, release) = (blocking.clone(), release.clone());
        lp.queue_work(
            move || {
                blocking.add();
                release.wait_for(1)
            },
            |lp, r| {
                assert!(r.unwrap(), "a blocking job was never released");
                lp.state.completed += 1;
            },
        )
        .unwrap();
    }
    let ran = Arc::new(AtomicUsize::new(0));
    let mut requests = Vec::new();
    for _ in 0..16 {
        let ran = ran.clone();
        let request = lp
            .queue_work(
                move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                },
                |lp, r| {
                    assert!(r.is_err_and(|e| is_cancelled(&e)), "not cancelled");
                    lp.state.cancelled += 1;
                },
            )
            .unwrap();
        requests.push(request);
    }
    // The workers are let go with 20 jobs queued: each takes one blocking job, and the 16
    // behind them stay queued.
    gate.add();
    assert!(blocking.wait_for(4), "the 4 blocking jobs did not all start: a worker took more than one job");
    for (i, request) in requests.into_iter().enumerate() {
        lp.cancel_work(request).unwrap_or_else(|e| panic!("queued job {i} could not be cancelled: {e}"));
    }
    release.add();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "cancelled work ran");
    assert_eq!(lp.state.cancelled, 16);
    assert_eq!(lp.state.completed, 4);
}

/// As many jobs as workers, each waiting until all of them have arrived: they must all run at
/// once. A worker that took two of them at a time would leave the second waiting behind the
/// first, which waits for the second.
#[test]
fn as_many_jobs_as_workers_all_run_at_once() {
    let mut lp = pool_of(4, Vec::new());
    time_limit(&mut lp, 60);
    // Queued while the workers are held, so they find all of it queued at once.
    let gate = hold_workers(&mut lp, 4);
    let arrived = Count::default();
    for _ in 0..4 {
        let arrived = arrived.clone();
        lp.queue_work(
            move || {
                arrived.add();
                arrived.wait_for(4)
            },
            |lp, r| lp.state.push(r.unwrap()),
        )
        .unwrap();
    }
    // Jobs behind them make the queue long.
    for _ in 0..4 {
        lp.queue_work(|| (), |_, r| r.unwrap()).unwrap();
    }
    gate.add();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec![true; 4], "the jobs did not all run at once");
}

/// Work starts in queue order: on one worker exactly in that order; on two, with the first
/// job occupying one worker, the rest in queue order on the other, not behind the first.
#[test]
fn work_starts_in_queue_order() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let mut lp = pool_of(1, ());
    time_limit(&mut lp, 60);
    for i in 0..100 {
        let started = started.clone();
        lp.queue_work(move || started.lock().unwrap().push(i), |_, r| r.unwrap()).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*started.lock().unwrap(), (0..100).collect::<Vec<_>>());

    let mut lp = pool_of(2, ());
    time_limit(&mut lp, 60);
    let gate = hold_workers(&mut lp, 2);
    let started = Arc::new(Mutex::new(Vec::new()));
    let rest_done = Count::default();
    let long_thread = Arc::new(Mutex::new(None));
    {
        let (rest_done, long_thread) = (rest_done.clone(), long_thread.clone());
        // The long job lasts until all the others have run.
        lp.queue_work(
            move || {
                *long_thread.lock().unwrap() = Some(thread::current().id());
                rest_done.wait_for(1)
            },
            |_, r| assert!(r.unwrap(), "the other jobs did not run while the long one did"),
        )
        .unwrap();
    }
    const REST: usize = 10;
    for i in 0..REST {
        let (started, rest_done) = (started.clone(), rest_done.clone());
        lp.queue_work(
            move || {
                started.lock().unwrap().push((i, thread::current().id()));
                if i == REST - 1 {
                    rest_done.add();
                }
            },
            |_, r| r.unwrap(),
        )
        .unwrap();
    }
    gate.add();
    lp.run(RunMode::Default).unwrap();
    let started = started.lock().unwrap();
    let order: Vec<usize> = started.iter().map(|&(i, _)| i).collect();
    assert_eq!(order, (0..REST).collect::<Vec<_>>(), "the jobs after the long one started out of order");
    let long_thread = long_thread.lock().unwrap().unwrap();
    assert!(started.iter().all(|&(_, t)| t != long_thread), "a job waited behind the long one");
}
