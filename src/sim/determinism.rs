//! Running a scenario twice and comparing what happened.

use std::fmt;

use super::{Sim, SimConfig, TraceEvent};

/// Where two runs of a scenario first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event.
    pub index: usize,
    /// The event of the first run there (`None`: the run had ended).
    pub first: Option<TraceEvent>,
    /// The event of the second run there.
    pub second: Option<TraceEvent>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "runs diverge at event {}: {:?} vs {:?}", self.index, self.first, self.second)
    }
}

impl std::error::Error for Divergence {}

/// Runs `scenario` twice on fresh simulations with the same `seed` and compares the traces.
/// Returns the trace, or where the two runs first differ.
pub fn check_determinism<S: Default>(
    seed: u64,
    scenario: impl Fn(&mut Sim<S>),
) -> Result<Vec<TraceEvent>, Divergence> {
    check_determinism_with(SimConfig::new().seed(seed), scenario)
}

/// Like [`check_determinism`], with a whole configuration (chunking, chaos, latency...).
/// Without a seed in `config`, both runs share the one drawn for the first.
pub fn check_determinism_with<S: Default>(
    config: SimConfig,
    scenario: impl Fn(&mut Sim<S>),
) -> Result<Vec<TraceEvent>, Divergence> {
    let seed = config.resolve_seed();
    let run = || {
        let mut sim = Sim::with_config(config.clone().seed(seed), S::default());
        scenario(&mut sim);
        sim.trace()
    };
    let (first, second) = (run(), run());
    match first.iter().zip(&second).position(|(a, b)| a != b) {
        None if first.len() == second.len() => Ok(first),
        index => {
            let index = index.unwrap_or(first.len().min(second.len()));
            Err(Divergence { index, first: first.get(index).cloned(), second: second.get(index).cloned() })
        }
    }
}
