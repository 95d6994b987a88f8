//! The browser client's reconnect policy, for load-generator clients that must come
//! back the way real tabs do: exponential backoff from 500 ms, doubling to a 30 s
//! cap, each wait drawn from the upper half of its ceiling ("full jitter" as
//! `src/app/browser/transport.rs` has it: `ceiling × (0.5 + random × 0.5)`).
//!
//! The jitter comes from a small seeded generator rather than the thread RNG, so a
//! storm run can be replayed with the same waits (`--seed`), and a thousand clients
//! cost nothing to draw from.

/// The first ceiling: the wait before the first reconnect is 250–500 ms.
pub const FIRST_CEILING_MS: u64 = 500;
/// The largest ceiling: no wait is longer than 30 s.
pub const MAX_CEILING_MS: u64 = 30_000;

/// The ceiling of attempt `attempt` (0-based): 500 ms doubling, capped at 30 s.
pub fn ceiling_ms(attempt: u32) -> u64 {
    (FIRST_CEILING_MS << attempt.min(6)).min(MAX_CEILING_MS)
}

/// The wait before attempt `attempt`, with `random` in `[0, 1)`: the browser's
/// `backoff_ms` with its `Math.random()` passed in.
pub fn backoff_ms(attempt: u32, random: f64) -> u64 {
    (ceiling_ms(attempt) as f64 * (0.5 + random.clamp(0.0, 1.0) * 0.5)) as u64
}

/// SplitMix64: tiny, fast, and good enough to spread waits (not for secrets).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator for client `index` of a run seeded with `seed`: every client
    /// draws its own sequence, and the same seed gives the same waits.
    pub fn new(seed: u64, index: u64) -> Jitter {
        let mut j = Jitter(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        j.next_u64();
        j
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`, as `Math.random()` gives.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The wait before attempt `attempt`.
    pub fn backoff_ms(&mut self, attempt: u32) -> u64 {
        backoff_ms(attempt, self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_to_the_cap() {
        let ceilings: Vec<u64> = (0..9).map(ceiling_ms).collect();
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(ceiling_ms(u32::MAX), 30_000);
    }

    #[test]
    fn waits_lie_in_the_upper_half_of_the_ceiling() {
        assert_eq!(backoff_ms(0, 0.0), 250);
        assert_eq!(backoff_ms(0, 0.999_999), 499);
        assert_eq!(backoff_ms(3, 0.5), 3000);
        let mut jitter = Jitter::new(7, 0);
        for attempt in 0..10 {
            for _ in 0..200 {
                let wait = jitter.backoff_ms(attempt);
                let ceiling = ceiling_ms(attempt);
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
        let a: Vec<u64> = (0..5).map(|i| Jitter::new(1, i).next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|i| Jitter::new(1, i).next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(Jitter::new(1, 0).next_u64(), Jitter::new(2, 0).next_u64());
    }
}
