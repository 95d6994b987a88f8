//! The hybrid logical clock that stamps every write.
//!
//! A [`Stamp`] is `(wall_ms, counter, client)`: wall-clock milliseconds, a counter
//! that orders writes made within one millisecond (or while the wall clock stands
//! still or goes backwards), and the writing replica's id, which makes every stamp
//! unique and the order total. Merges are last-writer-wins by stamp, so every replica
//! picks the same winner without talking to the others.
//!
//! [`Hlc`] hands out stamps that strictly increase on one replica and, after
//! [`Hlc::receive`] (or [`Hlc::observe`]) of a remote stamp, are greater than it: a
//! write made after seeing another write wins over it, whatever the two wall clocks
//! say. A remote stamp too far in the future is refused, so one machine with a wrong
//! clock cannot make its writes win forever.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::uid::ClientId;

/// The time of one write. Ordered by `(wall_ms, counter, client)`: the field order
/// is the comparison order (derived `Ord`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, as the writing clock saw them.
    pub wall_ms: u64,
    /// Orders stamps that share `wall_ms`.
    pub counter: u32,
    /// The replica that wrote; breaks the remaining ties.
    pub client: ClientId,
}

/// A malformed stamp string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stamp `{input}`: {reason}")]
pub struct StampError {
    /// The rejected input, at most 80 characters of it.
    pub input: String,
    /// Which part is wrong.
    pub reason: &'static str,
}

/// Errors of the clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The remote stamp is further ahead of the local wall clock than allowed.
    #[error(
        "stamp at {remote_ms} ms is more than {max_skew_ms} ms ahead of the clock at {local_ms} ms"
    )]
    TooFarAhead {
        remote_ms: u64,
        local_ms: u64,
        max_skew_ms: u64,
    },
}

impl Stamp {
    fn parse(input: &str) -> Result<Stamp, StampError> {
        let err = |reason| StampError {
            input: input.chars().take(80).collect(),
            reason,
        };
        let mut parts = input.splitn(3, ':');
        let (Some(wall), Some(counter), Some(client)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected `<wall_ms>:<counter>:<client uuid>`"));
        };
        // `u64::from_str` accepts a leading `+`; the format has one spelling only.
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(wall) {
            return Err(err("wall_ms is not a decimal number"));
        }
        if !digits(counter) {
            return Err(err("counter is not a decimal number"));
        }
        let wall_ms = wall.parse().map_err(|_| err("wall_ms out of range"))?;
        let counter = counter.parse().map_err(|_| err("counter out of range"))?;
        let client = ClientId::parse(client).map_err(|_| err("client is not a v4 UUID"))?;
        Ok(Stamp {
            wall_ms,
            counter,
            client,
        })
    }
}

impl FromStr for Stamp {
    type Err = StampError;

    fn from_str(s: &str) -> Result<Stamp, StampError> {
        Stamp::parse(s)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.wall_ms, self.counter, self.client)
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stamp({self})")
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct StampVisitor;

impl<'de> Visitor<'de> for StampVisitor {
    type Value = Stamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stamp string `<wall_ms>:<counter>:<client uuid>`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Stamp, E> {
        Stamp::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        d.deserialize_str(StampVisitor)
    }
}

/// A hybrid logical clock owned by one replica.
///
/// Serialisable so a replica's snapshot keeps its clock: after a reload the next
/// stamp is still greater than every stamp the replica made or saw before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    client: ClientId,
    max_skew_ms: u64,
    /// The highest `(wall_ms, counter)` reached, as a stamp of this client.
    last: Option<Stamp>,
}

impl Hlc {
    /// A clock for `client` that refuses remote stamps more than `max_skew_ms`
    /// ahead of the local wall clock.
    pub fn new(client: ClientId, max_skew_ms: u64) -> Hlc {
        Hlc {
            client,
            max_skew_ms,
            last: None,
        }
    }

    /// The replica this clock stamps for.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The largest skew [`Hlc::receive`] accepts.
    pub fn max_skew_ms(&self) -> u64 {
        self.max_skew_ms
    }

    /// The highest point the clock has reached (the last stamp handed out, or the
    /// `(wall_ms, counter)` of a greater remote stamp received since, under this
    /// client's id). `None` for a fresh clock.
    pub fn last(&self) -> Option<Stamp> {
        self.last
    }

    /// A new stamp, greater than every stamp this clock handed out or received.
    ///
    /// Uses `wall_ms` if it is ahead; otherwise stays on the last millisecond and
    /// bumps the counter, so a wall clock that goes backwards or stands still does
    /// not break monotonicity. When the counter is exhausted the clock borrows the
    /// next millisecond.
    pub fn now(&mut self, wall_ms: u64) -> Stamp {
        let (wall_ms, counter) = match self.last {
            Some(last) if last.wall_ms >= wall_ms => match last.counter.checked_add(1) {
                Some(counter) => (last.wall_ms, counter),
                // 2^32 stamps in one millisecond: borrow the next one. Saturating
                // keeps this panic-free at the end of time.
                None => (last.wall_ms.saturating_add(1), 0),
            },
            _ => (wall_ms, 0),
        };
        let stamp = Stamp {
            wall_ms,
            counter,
            client: self.client,
        };
        self.last = Some(stamp);
        stamp
    }

    /// Checks that `remote` is not more than `max_skew_ms` ahead of `wall_ms`.
    /// Stamps in the past are always fine: they are merely old writes.
    pub fn check_skew(remote: &Stamp, wall_ms: u64, max_skew_ms: u64) -> Result<(), ClockError> {
        if remote.wall_ms > wall_ms.saturating_add(max_skew_ms) {
            return Err(ClockError::TooFarAhead {
                remote_ms: remote.wall_ms,
                local_ms: wall_ms,
                max_skew_ms,
            });
        }
        Ok(())
    }

    /// Moves the clock past `remote`, so the next [`Hlc::now`] is greater than it,
    /// unless `remote` is too far ahead of `wall_ms`; then the clock is unchanged.
    pub fn receive(&mut self, remote: &Stamp, wall_ms: u64) -> Result<(), ClockError> {
        Hlc::check_skew(remote, wall_ms, self.max_skew_ms)?;
        self.observe(remote);
        Ok(())
    }

    /// Moves the clock past `remote` without the skew check. For stamps that a
    /// trusted party already checked: the server's data was checked against the
    /// server's clock, and refusing it here would only make local writes lose to
    /// older ones when the local wall clock is slow.
    pub fn observe(&mut self, remote: &Stamp) {
        let ahead = match self.last {
            None => true,
            Some(last) => (remote.wall_ms, remote.counter) > (last.wall_ms, last.counter),
        };
        if ahead {
            // Taking over (wall_ms, counter) is enough: `now()` bumps the counter,
            // so its stamp is greater than `remote` whatever the client ids.
            self.last = Some(Stamp {
                wall_ms: remote.wall_ms,
                counter: remote.counter,
                client: self.client,
            });
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if the clock is before it).
/// Works in the browser through chrono's `wasmbind`.
pub fn wall_clock_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientId {
        ClientId::from_random_bytes([n; 16])
    }

    #[test]
    fn stamps_order_by_wall_then_counter_then_client() {
        let (a, b) = (client(1), client(2));
        let s = |wall_ms, counter, client| Stamp {
            wall_ms,
            counter,
            client,
        };
        assert!(s(1, 9, b) < s(2, 0, a));
        assert!(s(2, 0, b) < s(2, 1, a));
        assert!(s(2, 1, a) < s(2, 1, b) || s(2, 1, b) < s(2, 1, a));
        assert_eq!(s(2, 1, a).cmp(&s(2, 1, b)), a.cmp(&b));
    }

    #[test]
    fn ten_thousand_stamps_in_one_millisecond_strictly_increase() {
        let mut hlc = Hlc::new(client(1), 1000);
        let mut prev = hlc.now(5);
        for _ in 0..10_000 {
            let next = hlc.now(5);
            assert!(next > prev);
            prev = next;
        }
        assert_eq!(prev.wall_ms, 5);
        assert_eq!(prev.counter, 10_000);
    }

    #[test]
    fn wall_clock_going_backwards_stays_monotonic() {
        let mut hlc = Hlc::new(client(1), 1000);
        let a = hlc.now(10_000);
        let b = hlc.now(3);
        let c = hlc.now(9_999);
        let d = hlc.now(10_001);
        assert!(a < b && b < c && c < d);
        assert_eq!(d.wall_ms, 10_001);
        assert_eq!(d.counter, 0);
    }

    #[test]
    fn counter_overflow_borrows_the_next_millisecond() {
        let mut hlc = Hlc::new(client(1), 1000);
        hlc.observe(&Stamp {
            wall_ms: 7,
            counter: u32::MAX,
            client: client(2),
        });
        let s = hlc.now(7);
        assert_eq!((s.wall_ms, s.counter), (8, 0));
    }

    #[test]
    fn receive_moves_past_the_remote_stamp() {
        let mut hlc = Hlc::new(client(9), 60_000);
        hlc.now(1_000);
        let remote = Stamp {
            wall_ms: 30_000,
            counter: 4,
            client: client(200),
        };
        hlc.receive(&remote, 1_000).unwrap();
        assert!(hlc.now(1_000) > remote);
    }

    #[test]
    fn receive_rejects_a_stamp_too_far_ahead_and_stays_unchanged() {
        let mut hlc = Hlc::new(client(1), 1_000);
        hlc.now(500);
        let before = hlc.clone();
        let remote = Stamp {
            wall_ms: 1_501,
            counter: 0,
            client: client(2),
        };
        assert_eq!(
            hlc.receive(&remote, 500),
            Err(ClockError::TooFarAhead {
                remote_ms: 1_501,
                local_ms: 500,
                max_skew_ms: 1_000
            })
        );
        assert_eq!(hlc, before);
        // Exactly at the limit is fine.
        let edge = Stamp {
            wall_ms: 1_500,
            ..remote
        };
        assert!(Hlc::check_skew(&edge, 500, 1_000).is_ok());
        assert!(Hlc::check_skew(&edge, u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn stamp_string_round_trip_and_errors() {
        let s = Stamp {
            wall_ms: 1_764_160_000_000,
            counter: 3,
            client: client(4),
        };
        let text = s.to_string();
        assert!(text.starts_with("1764160000000:3:"));
        assert_eq!(text.parse::<Stamp>(), Ok(s));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), s);
        for bad in [
            "",
            "1:2",
            "x:0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002",
            "+1:0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002",
            "1:-0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002",
            "1:4294967296:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002",
            "99999999999999999999:0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002",
            "1:0:nope",
        ] {
            assert!(bad.parse::<Stamp>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Stamp>("12").is_err());
    }

    #[test]
    fn hlc_round_trips_through_json() {
        let mut hlc = Hlc::new(client(1), 10);
        hlc.now(42);
        let back: Hlc = serde_json::from_str(&serde_json::to_string(&hlc).unwrap()).unwrap();
        assert_eq!(back, hlc);
    }

    #[test]
    fn wall_clock_is_after_2024() {
        assert!(wall_clock_ms() > 1_704_067_200_000);
    }
}
