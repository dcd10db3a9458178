//! The simulated hour: 1,000 fake clients against `examples/echo_server.rs` on the
//! simulator with chaos on (short writes, reads that find nothing, EMFILE on accept), random
//! per-link latency and random read sizes. Each client connects in the first minute, sends
//! messages of random sizes at random times (now and then a burst of up to 128 KiB),
//! sometimes stops reading for up to ten minutes (so the server's backpressure engages: the
//! hour stops its reading some 35 times), and half-closes in the last minute. Every byte must come
//! back exactly once and in order, every connection must end with the server's FIN and no
//! reset, and once the listener closes the loop must end by itself.

#[path = "../../examples/echo_server.rs"]
mod echo_server;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::sim::{check_determinism_with, Chunking, FakePeer, Sim, SimConfig};
use evloop::TcpListener;

const SEED: u64 = 15;

fn addr() -> SocketAddr {
    "10.0.0.1:7000".parse().unwrap()
}

/// The size of a run.
#[derive(Clone, Copy)]
struct Plan {
    clients: usize,
    /// Virtual milliseconds.
    duration: u64,
    /// Messages per client, on average.
    messages: u64,
    /// The largest message.
    max_message: u64,
    chaos: f64,
}

/// The hour. Its cost in real time grows with clients x messages (every poll of the
/// simulator looks at every connection): about 20 s in a debug build on 2 cores.
const HOUR: Plan = Plan { clients: 1_000, duration: 3_600_000, messages: 10, max_message: 4096, chaos: 0.05 };

/// A tenth of the clients, for the checks that run a scenario more than once.
const SMALL: Plan = Plan { clients: 100, ..HOUR };

/// The test's own random choices (the simulator's seed drives the network's): xorshift64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

enum Action {
    Connect {
        latency: Duration,
    },
    Send(Vec<u8>),
    /// Stop reading, until `Resume`: what the server echoes piles up.
    Pause,
    Resume,
    Shutdown,
}

struct Event {
    at: u64,
    client: usize,
    action: Action,
}

/// Every client's script, in time order: connect in the first minute, messages until the
/// last minute, half-close in the last minute.
fn schedule(plan: &Plan, rng: &mut Rng) -> Vec<Event> {
    let minute = plan.duration / 60;
    let mut events = Vec::new();
    for client in 0..plan.clients {
        let start = rng.below(minute);
        let latency = Duration::from_millis(1 + rng.below(50));
        events.push(Event { at: start, client, action: Action::Connect { latency } });
        let end = plan.duration - 1 - rng.below(minute);
        for _ in 0..1 + rng.below(2 * plan.messages) {
            let at = start + 1 + rng.below(plan.duration - 2 * minute);
            // One message in 40 is a burst, bigger than the windows and the server's
            // high-water mark together, so that a paused client stalls the server.
            let max = if rng.below(40) == 0 { plan.max_message * 32 } else { plan.max_message };
            let len = 1 + rng.below(max);
            let data: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            events.push(Event { at, client, action: Action::Send(data) });
            if rng.below(4) == 0 {
                events.push(Event { at, client, action: Action::Pause });
                let resume = (at + 1 + rng.below(10 * minute)).min(end);
                events.push(Event { at: resume, client, action: Action::Resume });
            }
        }
        events.push(Event { at: end, client, action: Action::Shutdown });
    }
    // Stable: a client's events at the same moment stay in order (send, then pause; a
    // resume due at the end comes before the half-close, which resumes anyway).
    events.sort_by_key(|e| e.at);
    events
}

/// A fake client: what it sent, and how much of it has come back.
struct Client {
    peer: Option<FakePeer>,
    sent: Vec<u8>,
    echoed: usize,
    problem: Option<String>,
}

impl Client {
    /// Takes what has arrived: it must continue the echo of what was sent, in order.
    fn take_echoes(&mut self) {
        let Some(peer) = &self.peer else { return };
        let got = peer.recv();
        if self.problem.is_some() || got.is_empty() {
            return;
        }
        let end = self.echoed + got.len();
        if self.sent.get(self.echoed..end) != Some(&got[..]) {
            let at = got.iter().zip(&self.sent[self.echoed..]).position(|(a, b)| a != b);
            self.problem = Some(format!(
                "{} bytes back after {} that are not what followed (first difference at +{at:?}; {} sent)",
                got.len(),
                self.echoed,
                self.sent.len()
            ));
        }
        self.echoed = end;
    }
}

/// What a run found.
struct Outcome {
    /// Per client with a problem: its index and what was wrong.
    problems: Vec<(usize, String)>,
    bytes: usize,
    events: usize,
    trace: Vec<evloop::sim::TraceEvent>,
}

fn config(plan: &Plan) -> SimConfig {
    SimConfig::new()
        .seed(SEED)
        .chaos(plan.chaos)
        .chunking(Chunking::Random { max: 8192 })
        .window(16 << 10)
        .livelock_limit(1_000_000)
}

/// Runs `plan` against the server `serve` starts, on `sim`.
fn run(plan: &Plan, sim: &mut Sim<()>, serve: fn(&mut Sim<()>) -> TcpListener) -> Outcome {
    let events = schedule(plan, &mut Rng(SEED.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1));
    let listener = serve(sim);
    let mut clients: Vec<Client> = (0..plan.clients)
        .map(|_| Client { peer: None, sent: Vec::new(), echoed: 0, problem: None })
        .collect();
    let mut max_latency = Duration::ZERO;
    for event in &events {
        let now = sim.elapsed().as_millis() as u64;
        if event.at > now {
            sim.advance(Duration::from_millis(event.at - now)).unwrap();
        }
        let client = &mut clients[event.client];
        if let Action::Connect { latency } = event.action {
            let peer = sim.connect(addr()).unwrap();
            peer.set_latency(latency);
            max_latency = max_latency.max(latency);
            client.peer = Some(peer);
            continue;
        }
        client.take_echoes();
        let Some(peer) = &client.peer else { unreachable!("a client acts after it connects") };
        match &event.action {
            Action::Send(data) => {
                peer.send(data);
                client.sent.extend_from_slice(data);
            }
            Action::Pause => peer.pause_reading(),
            Action::Resume => peer.resume_reading(),
            Action::Shutdown => {
                peer.resume_reading();
                peer.shutdown();
            }
            Action::Connect { .. } => unreachable!(),
        }
    }
    // Every client has half-closed: once the server has answered them all, nothing is left
    // but the listener. Without it the loop must end by itself (no stall, no livelock).
    listener.close(sim).unwrap();
    sim.run().unwrap_or_else(|e| panic!("the loop did not end by itself: {e}"));
    // The server's last bytes and FIN may still be on the wire.
    sim.advance(max_latency).unwrap();
    let mut problems = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        client.take_echoes();
        let peer = client.peer.as_ref().unwrap();
        let problem = client.problem.take().or_else(|| {
            let short = (client.echoed != client.sent.len())
                .then(|| format!("{} of {} bytes came back", client.echoed, client.sent.len()));
            short
                .or_else(|| peer.is_reset().then(|| "reset".to_owned()))
                .or_else(|| (!peer.is_closed()).then(|| "no FIN from the server".to_owned()))
        });
        problems.extend(problem.map(|p| (i, p)));
    }
    let bytes = clients.iter().map(|c| c.sent.len()).sum();
    Outcome { problems, bytes, events: events.len(), trace: sim.trace() }
}

fn example_server(sim: &mut Sim<()>) -> TcpListener {
    echo_server::serve(sim, addr()).unwrap()
}

/// Chaos faults the run met, by kind.
fn chaos_counts(trace: &[evloop::sim::TraceEvent]) -> Vec<(&'static str, usize)> {
    let kinds = ["chaos: EMFILE", "chaos: spurious read", "chaos: short write"];
    kinds.iter().map(|&k| (k, trace.iter().filter(|e| e.kind == k).count())).collect()
}

#[test]
fn a_simulated_hour_of_1000_clients_under_chaos_loses_no_byte() {
    let real = Instant::now();
    let mut sim = Sim::with_config(config(&HOUR), ());
    let outcome = run(&HOUR, &mut sim, example_server);
    let chaos = chaos_counts(&outcome.trace);
    eprintln!(
        "simulated hour: {} clients, {} scripted events, {} bytes echoed, {} trace events, \
         chaos {chaos:?}, {:?} virtual in {:?} real",
        HOUR.clients,
        outcome.events,
        outcome.bytes,
        outcome.trace.len(),
        sim.elapsed(),
        real.elapsed()
    );
    assert!(
        outcome.problems.is_empty(),
        "{} clients lost bytes: {:?}",
        outcome.problems.len(),
        &outcome.problems[..outcome.problems.len().min(5)]
    );
    // The last client half-closed in the last minute: the hour went by.
    assert!(sim.elapsed() >= Duration::from_millis(HOUR.duration * 59 / 60), "{:?}", sim.elapsed());
    // Chaos did fire, of every kind: the schedule was not the calm one.
    assert!(chaos.iter().all(|&(_, n)| n >= 10), "too little chaos: {chaos:?}");
}

/// An echo server that loses one byte: the first of its 100th read.
fn lossy_server(sim: &mut Sim<()>) -> TcpListener {
    let reads = Rc::new(Cell::new(0));
    TcpListener::bind(sim, addr(), move |lp, stream| {
        let reads = reads.clone();
        let started = stream.read_start(lp, move |lp, stream, data| match data {
            Ok(bytes) if !bytes.is_empty() => {
                reads.set(reads.get() + 1);
                let bytes = if reads.get() == 100 { &bytes[1..] } else { bytes };
                drop(stream.write(lp, bytes));
            }
            Ok(_) => drop(stream.shutdown(lp, move |lp, _| drop(stream.close(lp)))),
            Err(_) => drop(stream.close(lp)),
        });
        started.unwrap();
    })
    .unwrap()
}

#[test]
fn the_soak_catches_a_server_that_loses_one_byte() {
    let mut sim = Sim::with_config(config(&SMALL), ());
    let outcome = run(&SMALL, &mut sim, lossy_server);
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
    let (_, problem) = &outcome.problems[0];
    assert!(problem.contains("not what followed"), "{problem}");
}

#[test]
fn the_run_is_deterministic_and_chaos_changes_its_schedule_not_its_result() {
    let scenario = |plan: Plan| {
        move |sim: &mut Sim<()>| {
            let outcome = run(&plan, sim, example_server);
            assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        }
    };
    let chaotic = check_determinism_with(config(&SMALL), scenario(SMALL)).unwrap_or_else(|d| panic!("{d}"));
    let calm_plan = Plan { chaos: 0.0, ..SMALL };
    let calm =
        check_determinism_with(config(&calm_plan), scenario(calm_plan)).unwrap_or_else(|d| panic!("{d}"));
    assert!(chaos_counts(&calm).iter().all(|&(_, n)| n == 0), "{:?}", chaos_counts(&calm));
    assert!(chaos_counts(&chaotic).iter().all(|&(_, n)| n > 0), "{:?}", chaos_counts(&chaotic));
    assert_ne!(chaotic, calm, "chaos changed nothing");
}
