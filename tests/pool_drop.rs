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

#[test]
fn dropping_the_loop_joins_its_workers() {
    assert!(std::path::Path::new("/proc/self/task").exists(), "needs Linux /proc");
    let mut lp = Loop::builder().threadpool_size(3).build().unwrap();
    assert_eq!(pool_threads(), 0);
    lp.queue_work(|| 7, |_, r| assert_eq!(r.unwrap(), 7)).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(settles_at(3), "{} pool threads, not 3", pool_threads());
    // Queued work that never ran is dropped with the loop; running work finishes first.
    lp.queue_work(|| std::thread::sleep(std::time::Duration::from_millis(50)), |_, _| {}).unwrap();
    drop(lp);
    assert!(settles_at(0), "{} worker(s) outlived their loop", pool_threads());
}
