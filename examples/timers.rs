//! A tour of the core loop: one-shot and repeating timers, an idle counter, and a waker
//! fed from another thread. Run with `RUST_LOG=evloop=debug` to see handles open and close.

use std::thread;
use std::time::Duration;

use evloop::{Idle, Loop, RunMode, Timer, Waker};

#[derive(Default)]
struct App {
    ticks: u32,
    idle_spins: u64,
    messages: u32,
}

fn main() -> std::io::Result<()> {
    env_logger::init();
    let mut lp = Loop::with_state(App::default())?;

    // A one-shot timer.
    let once = Timer::new(&mut lp, |lp, t| {
        println!("[{:>4} ms] one-shot timer fired", lp.now());
        t.close(lp).unwrap();
    });
    once.start(&mut lp, Duration::from_millis(50), Duration::ZERO)?;

    // A repeating timer, stopped after 5 ticks.
    let ticker = Timer::new(&mut lp, |lp, t| {
        lp.state.ticks += 1;
        println!("[{:>4} ms] tick {}", lp.now(), lp.state.ticks);
        if lp.state.ticks == 5 {
            println!("[{:>4} ms] ticker stops after 5 ticks", lp.now());
            t.close(lp).unwrap();
        }
    });
    ticker.start(&mut lp, Duration::from_millis(20), Duration::from_millis(20))?;

    // An idle counter: spins the loop without blocking until it has counted 10,000.
    let idle = Idle::new(&mut lp, |lp, idle| {
        lp.state.idle_spins += 1;
        if lp.state.idle_spins == 10_000 {
            println!("[{:>4} ms] idle watcher counted 10000 iterations", lp.now());
            idle.close(lp).unwrap();
        }
    });
    idle.start(&mut lp)?;

    // A waker: a worker thread sends three messages; wakes that arrive together coalesce.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let waker = Waker::new(&mut lp, move |lp, w| {
        for msg in rx.try_iter() {
            lp.state.messages += 1;
            println!("[{:>4} ms] waker: {msg}", lp.now());
        }
        if lp.state.messages == 3 {
            w.close(lp).unwrap();
        }
    });
    let remote = waker.clone();
    let worker = thread::spawn(move || {
        for i in 1..=3 {
            thread::sleep(Duration::from_millis(30));
            tx.send(format!("message {i} from the worker thread")).unwrap();
            remote.wake().unwrap();
        }
    });

    let alive = lp.run(RunMode::Default)?;
    worker.join().unwrap();
    let m = lp.metrics();
    println!(
        "done at {} ms: alive={alive}, {} iterations, {} callbacks, {:?} idle in poll",
        lp.now(),
        m.iterations,
        m.callbacks,
        m.idle_time
    );
    Ok(())
}
