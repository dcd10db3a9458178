//! The simulator scenario that the fuzz target `sim_echo` runs on every input, shared with the
//! tests, which replay the inputs the fuzzer found: bytes decoded into what fake clients do
//! to `examples/echo_server.rs` on a simulated loop (connect, send, read, pause, half-close,
//! close, reset, faults, time), asserting that every byte sent comes back once and in order
//! unless the connection was reset or closed by the client, and that the server ends every
//! connection and leaks no handle.
//!
//! An input is five bytes of setup (seed, chunking, window, latency, chaos), then actions,
//! each an opcode byte and its argument bytes; a missing argument byte reads as 0.

#![allow(dead_code)]

#[path = "../../examples/echo_server.rs"]
mod echo_server;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::sim::{Chunking, FakePeer, Sim, SimConfig, SimError};

/// At most this many clients at once.
const MAX_CLIENTS: usize = 3;
/// At most this many bytes sent by each client: enough for many windows' worth, few enough
/// that a byte-by-byte chunking keeps the fuzzer fast.
const MAX_SENT: usize = 8 * 1024;
/// Link latencies an input picks from, in milliseconds.
const LATENCIES: [u64; 4] = [0, 1, 5, 20];

/// The input, read a byte at a time.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    /// The next byte; 0 once the input is used up.
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.data.split_first() else { return 0 };
        self.data = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn latency(&mut self) -> Duration {
        Duration::from_millis(LATENCIES[usize::from(self.byte() % 4)])
    }
}

/// A fake client and what it sent and got back.
struct Client {
    peer: FakePeer,
    sent: Vec<u8>,
    received: Vec<u8>,
    /// It sent FIN (half-close): it sends nothing more, and expects every echo then FIN.
    shut: bool,
    /// It closed its socket, or reset the connection: echoes may be lost.
    gone: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("sent", &self.sent.len())
            .field("received", &self.received.len())
            .field("shut", &self.shut)
            .field("gone", &self.gone)
            .field("reset", &self.peer.is_reset())
            .field("closed", &self.peer.is_closed())
            .finish()
    }
}

impl Client {
    /// Takes `bytes` as received: they must continue what was sent, in order.
    fn got(&mut self, bytes: Vec<u8>) {
        self.received.extend_from_slice(&bytes);
        assert!(
            self.sent.starts_with(&self.received),
            "echo out of order or invented: sent {} bytes, received {} that are not their start",
            self.sent.len(),
            self.received.len()
        );
    }

    /// Whether the connection is over for this client.
    fn ended(&self) -> bool {
        self.gone || self.peer.is_reset() || self.peer.is_closed()
    }
}

/// Runs the scenario `data` describes; panics where a property fails.
pub fn check(data: &[u8]) {
    let mut input = Input { data };
    let seed = u64::from(input.byte());
    let c = input.byte();
    let chunking = match c % 4 {
        0 | 1 => Chunking::Whole,
        2 => Chunking::Fixed(1 + usize::from(c / 4)),
        _ => Chunking::Random { max: 1 + usize::from(c / 4) },
    };
    let window = 1 << (6 + input.byte() % 11);
    let latency = input.latency();
    let chaos = [0.0, 0.0, 0.05, 0.3][usize::from(input.byte() % 4)];
    let config = SimConfig::new().seed(seed).chunking(chunking).window(window).latency(latency).chaos(chaos);
    let mut sim = Sim::with_config(config, ());
    let addr: SocketAddr = "10.0.0.1:7000".parse().unwrap_or_else(|_| unreachable!());
    let listener = echo_server::serve(&mut sim, addr).expect("bind");
    let mut clients: Vec<Client> = Vec::new();

    while !input.data.is_empty() {
        let op = input.byte() % 16;
        if op == 0 || clients.is_empty() {
            if clients.len() < MAX_CLIENTS {
                let peer = sim.connect(addr).expect("connect");
                clients.push(Client {
                    peer,
                    sent: Vec::new(),
                    received: Vec::new(),
                    shut: false,
                    gone: false,
                });
            }
            continue;
        }
        let n = clients.len();
        let client = &mut clients[usize::from(input.byte()) % n];
        match op {
            1 => {
                let len = (1 + usize::from(input.u16() % 4096)).min(MAX_SENT - client.sent.len());
                if !client.shut && !client.gone && !client.peer.is_reset() && len > 0 {
                    let from = client.sent.len();
                    let bytes: Vec<u8> = (from..from + len).map(|i| (i % 251) as u8).collect();
                    client.peer.send(&bytes);
                    client.sent.extend_from_slice(&bytes);
                }
            }
            2 => {
                let bytes = client.peer.recv();
                client.got(bytes);
            }
            3 => {
                let bytes = client.peer.recv_up_to(1 + usize::from(input.byte()));
                client.got(bytes);
            }
            4 => client.peer.pause_reading(),
            5 => client.peer.resume_reading(),
            6 => {
                client.peer.shutdown();
                client.shut = true;
            }
            7 => {
                client.peer.close();
                client.gone = true;
            }
            8 => {
                client.peer.reset();
                client.gone = true;
            }
            9 => run(sim.advance(Duration::from_millis(u64::from(input.byte())))),
            10 => run(sim.run_until_idle()),
            11 => client.peer.limit_writes(usize::from(input.byte() % 4), usize::from(input.byte() % 8), 1),
            12 => client.peer.would_block_writes(usize::from(input.byte() % 8)),
            13 => client.peer.spurious_readiness(usize::from(input.byte() % 8)),
            14 => {
                let latency = input.latency();
                client.peer.set_latency(latency);
            }
            _ => match sim.step() {
                // Nothing can happen now: only the listener waits.
                Err(SimError::Stalled { .. }) => {}
                other => run(other.map(drop)),
            },
        }
    }

    // The end: every client reads again and half-closes; each must then get all its bytes
    // back, and FIN.
    for client in &mut clients {
        client.peer.resume_reading();
        if !client.gone && !client.shut {
            client.peer.shutdown();
            client.shut = true;
        }
    }
    for steps in 0.. {
        // `Stalled`: nothing more can happen, but what the last step did may still be news.
        let stalled = match sim.step() {
            Ok(Some(_)) => false,
            Ok(None) | Err(SimError::Stalled { .. }) => true,
            Err(e) => panic!("the simulation failed: {e}"),
        };
        for client in &mut clients {
            let bytes = client.peer.recv();
            client.got(bytes);
        }
        if clients.iter().all(Client::ended) {
            break;
        }
        assert!(!stalled, "clients wait for echoes or FIN that never come: {clients:?}");
        assert!(steps < 100_000, "the clients never get their echoes back: {clients:?}");
    }
    for (i, client) in clients.iter().enumerate() {
        if !client.gone && !client.peer.is_reset() {
            assert_eq!(client.received.len(), client.sent.len(), "client {i}: echoes lost");
            assert!(client.peer.is_closed(), "client {i}: no FIN after the echoes");
        }
    }
    // Nothing is left: the server closed every connection.
    listener.close(&mut sim).expect("close the listener");
    run(sim.run());
    assert_eq!(sim.handle_count(), 0, "handles left open");
}

/// Fails on a simulation that could not go on.
fn run(result: Result<(), SimError>) {
    if let Err(e) = result {
        panic!("the simulation failed: {e}");
    }
}
