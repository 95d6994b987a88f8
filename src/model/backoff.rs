//! How long a client waits before it tries the server again: exponential backoff
//! from 500 ms, doubling to a 30 s cap, each wait drawn from the upper half of its
//! ceiling (`ceiling × (0.5 + random × 0.5)`), so a thousand clients dropped at once
//! do not come back at once.
//!
//! One formula for every client: the browser (`src/app/browser/transport.rs`, with
//! `Math.random()`) and the load generator's reconnecting clients (with a seeded
//! generator, so a storm replays the same waits). The randomness is passed in, so
//! this stays pure.

/// The first ceiling: the wait before the first retry is 250–500 ms.
pub const FIRST_CEILING_MS: u64 = 500;
/// The largest ceiling: no wait is longer than 30 s.
pub const MAX_CEILING_MS: u64 = 30_000;

/// The ceiling of attempt `attempt` (0-based): 500 ms doubling, capped at 30 s.
pub fn ceiling_ms(attempt: u32) -> u64 {
    (FIRST_CEILING_MS << attempt.min(6)).min(MAX_CEILING_MS)
}

/// The wait before attempt `attempt` (0-based), with `random` in `[0, 1)`.
pub fn backoff_ms(attempt: u32, random: f64) -> u64 {
    (ceiling_ms(attempt) as f64 * (0.5 + random.clamp(0.0, 1.0) * 0.5)) as u64
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
        assert_eq!(backoff_ms(20, 1.0), 30_000);
        // A random number out of range is clamped, never a longer or negative wait.
        assert_eq!(backoff_ms(0, -3.0), 250);
        assert_eq!(backoff_ms(0, 7.0), 500);
        for attempt in 0..10 {
            for step in 0..100 {
                let wait = backoff_ms(attempt, f64::from(step) / 100.0);
                let ceiling = ceiling_ms(attempt);
                assert!(wait >= ceiling / 2 && wait < ceiling, "{attempt}: {wait}");
            }
        }
    }
}
