//! Dropping the loop joins its worker threads. Alone in its file: it counts this process's
//! threads by name, which other tests running in parallel would disturb.

use evloop::{Loop, RunMode};

fn pool_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("evloop-pool"))
        .count()
}

/// Waits (bounded) until the count of pool threads is `n`: a new thread names itself only once
/// it runs, and an exited one leaves /proc a moment after `join` returns.
fn settles_at(n: usize) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool_threads() != n {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// The state letter (R, S, D...) of thread `tid` of this process.
fn thread_state(tid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // "TID (COMM) STATE ...": the name may hold spaces, so read after the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[test]
fn dropping_the_loop_joins_its_workers() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    assert!(std::path::Path::new("/proc/self/task").exists(), "needs Linux /proc");
    let mut lp = Loop::builder().threadpool_size(3).build().unwrap();
    assert_eq!(pool_threads(), 0);
    lp.queue_work(|| 7, |_, r| assert_eq!(r.unwrap(), 7)).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(settles_at(3), "{} pool threads, not 3", pool_threads());

    // Every worker runs a job that holds it until this thread is blocked in the drop (joining
    // the workers): the job queued behind them is then still queued when the loop goes.
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let me = me.file_name().unwrap().to_str().unwrap().to_string();
    let (running, dropping, finished, ran) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    for _ in 0..3 {
        let (running, dropping, finished, me) =
            (running.clone(), dropping.clone(), finished.clone(), me.clone());
        lp.queue_work(
            move || {
                running.fetch_add(1, SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                // Set just before `drop(lp)`; after it, the dropping thread sleeps only in
                // the join. Bounded: a broken drop fails the test instead of hanging it.
                while !(dropping.load(SeqCst) && thread_state(&me) == Some('S')) && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                finished.fetch_add(1, SeqCst);
            },
            |_, _| {},
        )
        .unwrap();
    }
    let flag = ran.clone();
    lp.queue_work(move || flag.store(true, SeqCst), |_, _| {}).unwrap();
    // Signal the workers (run one non-blocking iteration) and wait, bounded, until all three
    // hold a job.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.load(SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the workers never all started");
        lp.run(RunMode::NoWait).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    dropping.store(true, SeqCst);
    drop(lp);
    // Running work finished before the drop returned; queued work was dropped unrun.
    assert_eq!(finished.load(SeqCst), 3, "the drop did not wait for running work");
    assert!(!ran.load(SeqCst), "work still queued when the loop was dropped ran");
    assert!(settles_at(0), "{} worker(s) outlived their loop", pool_threads());
}
