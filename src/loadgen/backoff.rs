//! The browser's reconnect backoff ([`crate::model::backoff`]) for load-generator
//! clients that must come back the way real tabs do.
//!
//! The jitter comes from a small seeded generator (rand's `SmallRng`) rather than
//! the thread RNG, so a storm run can be replayed with the same waits (`--seed`),
//! and a thousand clients cost nothing to draw from.

use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::model::backoff;

/// One client's source of waits.
#[derive(Debug, Clone)]
pub struct Jitter(SmallRng);

impl Jitter {
    /// A generator for client `index` of a run seeded with `seed`: every client
    /// draws its own sequence, and the same seed gives the same waits.
    pub fn new(seed: u64, index: u64) -> Jitter {
        Jitter(SmallRng::seed_from_u64(
            seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F),
        ))
    }

    /// The wait before attempt `attempt` (0-based).
    pub fn backoff_ms(&mut self, attempt: u32) -> u64 {
        backoff::backoff_ms(attempt, self.0.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_lie_in_the_upper_half_of_the_ceiling() {
        let mut jitter = Jitter::new(7, 0);
        for attempt in 0..10 {
            for _ in 0..200 {
                let wait = jitter.backoff_ms(attempt);
                let ceiling = backoff::ceiling_ms(attempt);
                assert!(wait >= ceiling / 2 && wait < ceiling, "{attempt}: {wait}");
            }
        }
    }

    #[test]
    fn jitter_spreads_evenly_and_replays_by_seed() {
        // A thousand first waits fall into all five 50 ms slices of 250–500 ms,
        // none with more than a third of them: the storm is spread, not bunched.
        let mut slices = [0u32; 5];
        for index in 0..1000 {
            let wait = Jitter::new(42, index).backoff_ms(0);
            slices[((wait - 250) / 50) as usize] += 1;
        }
        assert!(
            slices.iter().all(|&n| (100..=333).contains(&n)),
            "{slices:?}"
        );
        let waits =
            |seed| -> Vec<u64> { (0..5).map(|i| Jitter::new(seed, i).backoff_ms(6)).collect() };
        assert_eq!(waits(1), waits(1));
        assert_ne!(waits(1), waits(2));
    }
}
