//! Per-client limits, so one client cannot starve the others.
//!
//! Pushes are metered by a token bucket per client id (refilled at
//! `max_pushes_per_second`, holding twice that for bursts); live sockets are counted
//! per client id. Both answer with typed errors (`rate_limited`,
//! `too_many_subscribers`) rather than queueing, so a flooding client is told to back
//! off while everybody else's requests go straight through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::model::wire::SyncError;

#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Mutex<State>>,
    rate: f64,
    burst: f64,
    max_sockets: usize,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    sockets: HashMap<String, usize>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Holds one of a client's socket slots; dropping it frees the slot.
pub struct SocketSlot {
    limiter: Limiter,
    client: String,
}

impl Limiter {
    pub fn new(pushes_per_second: u32, max_sockets_per_client: usize) -> Limiter {
        let rate = f64::from(pushes_per_second.max(1));
        Limiter {
            inner: Arc::default(),
            rate,
            burst: rate * 2.0,
            max_sockets: max_sockets_per_client,
        }
    }

    /// Takes one push token for `client`, or says how long to wait for one.
    pub fn check_push(&self, client: &str) -> Result<(), SyncError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.buckets.len() > 100_000 {
            // Forget idle clients' full buckets so the map cannot grow without bound.
            let (rate, burst) = (self.rate, self.burst);
            state
                .buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = state.buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(SyncError::RateLimited {
                retry_after_ms: (wait * 1000.0).ceil() as u64,
            })
        }
    }

    /// Reserves a live-socket slot for `client`.
    pub fn open_socket(&self, client: &str) -> Result<SocketSlot, SyncError> {
        let mut state = self.lock();
        let open = state.sockets.entry(client.to_string()).or_insert(0);
        if *open >= self.max_sockets {
            return Err(SyncError::TooManySubscribers {
                max: self.max_sockets,
            });
        }
        *open += 1;
        Ok(SocketSlot {
            limiter: self.clone(),
            client: client.to_string(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        if let Some(open) = state.sockets.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                state.sockets.remove(&self.client);
            }
        }
    }
}

/// Refuses JSON nested deeper than `max` arrays and objects, scanning the raw bytes
/// (strings skipped) without decoding them. serde_json would refuse 128 levels by
/// itself, but only after building the values above; this refuses a body a
/// legitimate client never sends (a push needs 4 levels) in one cheap pass, with
/// a typed error that says why. Anything that is not JSON passes through to the
/// decoder, which then refuses it.
pub fn check_json_depth(bytes: &[u8], max: usize) -> Result<(), SyncError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(SyncError::MalformedRequest {
                        detail: format!("JSON nested deeper than {max} levels"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_arrays_and_objects_outside_strings() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_json_depth(nested(4).as_bytes(), 4).is_ok());
        let err = check_json_depth(nested(5).as_bytes(), 4).unwrap_err();
        assert_eq!(err.code(), "malformed_request");
        assert!(err.to_string().contains("deeper than 4"), "{err}");
        // Brackets inside strings, escaped quotes included, do not count.
        let text = r#"{"a": "[[[[[[\"[[[[", "b": [{"c": "}}}"}]}"#;
        assert!(check_json_depth(text.as_bytes(), 3).is_ok());
        assert!(check_json_depth(text.as_bytes(), 2).is_err());
        // Siblings do not add up; a million levels is refused, not recursed into.
        let wide = format!("[{}]", vec!["[[]]"; 1000].join(","));
        assert!(check_json_depth(wide.as_bytes(), 3).is_ok());
        assert!(check_json_depth(nested(1_000_000).as_bytes(), 32).is_err());
    }

    #[test]
    fn a_burst_is_allowed_then_limited_per_client() {
        let limiter = Limiter::new(10, 2);
        for _ in 0..20 {
            limiter.check_push("flood").unwrap();
        }
        let err = limiter.check_push("flood").unwrap_err();
        assert!(matches!(err, SyncError::RateLimited { retry_after_ms } if retry_after_ms > 0));
        // Another client is not affected.
        limiter.check_push("calm").unwrap();
    }

    #[test]
    fn socket_slots_are_counted_and_freed() {
        let limiter = Limiter::new(10, 2);
        let a = limiter.open_socket("c").unwrap();
        let _b = limiter.open_socket("c").unwrap();
        assert!(limiter.open_socket("c").is_err());
        drop(a);
        assert!(limiter.open_socket("c").is_ok());
    }
}
