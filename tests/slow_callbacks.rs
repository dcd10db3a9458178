//! Slow-callback warnings. A test logger is installed once for this binary (so these tests
//! live in their own file); it keeps each record with the thread that logged it, and each
//! test looks only at its own thread's, since tests run in parallel.

use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use evloop::sim::Sim;
use evloop::{Handle, Loop, RunMode, Timer};

struct TestLogger;

static RECORDS: Mutex<Vec<(ThreadId, log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for TestLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) && record.target().starts_with("evloop") {
            let entry = (std::thread::current().id(), record.level(), record.args().to_string());
            RECORDS.lock().unwrap().push(entry);
        }
    }

    fn flush(&self) {}
}

fn install_logger() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_boxed_logger(Box::new(TestLogger)).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The warnings this thread has logged so far.
fn my_warnings() -> Vec<String> {
    let me = std::thread::current().id();
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, level, _)| *t == me && *level == log::Level::Warn)
        .map(|(_, _, msg)| msg.clone())
        .collect()
}

/// A simulated loop with one timer whose callback takes `spend` of virtual time.
fn sim_with_timer(threshold: Option<Duration>, spend: Duration) -> (Sim<()>, Handle) {
    let mut sim = Sim::new(1, ());
    if threshold.is_some() {
        sim.set_slow_callback_threshold(threshold); // else the default, which is off
    }
    let clock = sim.clock();
    let timer = Timer::new(&mut sim, move |_, _| clock.spend(spend));
    timer.start(&mut sim, Duration::from_millis(5), Duration::ZERO).unwrap();
    (sim, timer.into())
}

#[test]
fn a_slow_callback_is_logged_once_with_its_kind_id_and_duration() {
    install_logger();
    let (mut sim, timer) = sim_with_timer(Some(Duration::from_millis(10)), Duration::from_millis(30));
    sim.run().unwrap();
    let warnings = my_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(w.contains("slow callback"), "{w}");
    assert!(w.contains("Timer"), "{w}");
    assert!(w.contains(&format!("{timer:?}")), "{w}");
    assert!(w.contains("30ms"), "the exact virtual duration: {w}");
}

#[test]
fn a_fast_callback_is_not_logged() {
    install_logger();
    let (mut sim, _) = sim_with_timer(Some(Duration::from_millis(10)), Duration::from_millis(9));
    sim.run().unwrap();
    assert_eq!(sim.elapsed(), Duration::from_millis(14), "the timer fired and took 9 ms");
    assert_eq!(my_warnings(), Vec::<String>::new());
}

#[test]
fn without_a_threshold_nothing_is_logged() {
    install_logger();
    let (mut sim, _) = sim_with_timer(None, Duration::from_millis(30));
    sim.run().unwrap();
    assert_eq!(sim.elapsed(), Duration::from_millis(35), "the timer fired and took 30 ms");
    assert_eq!(my_warnings(), Vec::<String>::new());

    // The real loop, with a callback that really takes 30 ms.
    let mut lp = Loop::new().unwrap();
    assert_eq!(lp.slow_callback_threshold(), None);
    let timer = Timer::new(&mut lp, |_, _| busy_wait(Duration::from_millis(30)));
    timer.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(my_warnings(), Vec::<String>::new());
}

fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn a_slow_callback_on_the_real_clock_is_logged() {
    install_logger();
    let mut lp = Loop::builder().slow_callback_threshold(Duration::from_millis(10)).build().unwrap();
    // At least 30 ms by the monotonic clock, however busy the machine: always over 10 ms.
    let timer = Timer::new(&mut lp, |_, _| busy_wait(Duration::from_millis(30)));
    timer.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    let warnings = my_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("Timer") && warnings[0].contains(&format!("{:?}", Handle::from(timer))),
        "{warnings:?}"
    );
}
