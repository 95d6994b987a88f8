//! Fractional order keys: where a node sits among its siblings.
//!
//! Siblings sort by `(order_key, uid)`. A new key can always be made between two
//! others, so inserting or moving a node writes only that node: no sibling is ever
//! renumbered, and two replicas inserting concurrently never conflict. If two
//! replicas happen to pick the same key, the uid still orders them the same way on
//! every replica.
//!
//! # Shape of a key
//!
//! A key is an *integer part* followed by an optional *fraction*, all in base-62
//! digits `0-9A-Za-z` (ASCII order equals digit order, so keys compare as plain
//! bytes):
//!
//! * The integer part's first character (its head) encodes how many digits follow:
//!   `a` one, `b` two, … `z` twenty-six for non-negative integers; `Z` one, `Y` two,
//!   … `A` twenty-six for negative ones. A longer integer of the same sign sorts
//!   after (positive) or before (negative) every shorter one, because its head does.
//! * The fraction never ends in `0`, so every position has exactly one spelling
//!   and there is always room between two keys.
//!
//! Appending ([`OrderKey::between`]`(last, None)`) increments the integer part and
//! drops the fraction, so `n` appends make keys of `O(log n)` length (`a0`…`az`,
//! `b00`…`bzz`, …: 10,000 appends stay at 4 characters). Prepending decrements
//! likewise. Inserting between neighbours bisects the fraction, about six bits per
//! added character. Keys are at most [`OrderKey::MAX_LEN`] bytes; a bisection that
//! would exceed that fails with [`OrderKeyError::TooLong`] rather than making a key
//! the server would refuse.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The base-62 digits in ascending order.
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The smallest integer part (`A` and 26 zeros). Reserved: no key may be exactly
/// this, so there is always a key before any valid key.
const SMALLEST_INT: &[u8] = b"A00000000000000000000000000";

/// A position among siblings. Compares as its bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey(String);

/// Why a key is invalid or cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderKeyError {
    #[error("invalid order key `{key}`: {reason}")]
    Invalid { key: String, reason: &'static str },
    #[error("order key of {len} bytes is longer than {max}")]
    TooLong { len: usize, max: usize },
    #[error("order key `{low}` is not below `{high}`")]
    NotOrdered { low: String, high: String },
}

fn digit(b: u8) -> Option<usize> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as usize),
        b'A'..=b'Z' => Some((b - b'A') as usize + 10),
        b'a'..=b'z' => Some((b - b'a') as usize + 36),
        _ => None,
    }
}

/// Value of a character already known to be a digit (0 for anything else, which
/// keeps the arithmetic panic-free on keys that were not validated).
fn value(b: u8) -> usize {
    digit(b).unwrap_or(0)
}

/// Length of the integer part (head included) announced by `head`.
fn int_len(head: u8) -> Option<usize> {
    match head {
        b'a'..=b'z' => Some((head - b'a') as usize + 2),
        b'A'..=b'Z' => Some((b'Z' - head) as usize + 2),
        _ => None,
    }
}

impl OrderKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 128;

    /// The key of the first node placed anywhere: `a0` (integer zero).
    pub fn first() -> OrderKey {
        OrderKey("a0".to_string())
    }

    /// Validates a key received from outside.
    pub fn parse(key: &str) -> Result<OrderKey, OrderKeyError> {
        let invalid = |reason| OrderKeyError::Invalid {
            key: key.chars().take(Self::MAX_LEN).collect(),
            reason,
        };
        let bytes = key.as_bytes();
        if bytes.len() > Self::MAX_LEN {
            return Err(OrderKeyError::TooLong {
                len: bytes.len(),
                max: Self::MAX_LEN,
            });
        }
        let Some(&head) = bytes.first() else {
            return Err(invalid("empty"));
        };
        let int_len = int_len(head).ok_or_else(|| invalid("must start with a letter"))?;
        if bytes.len() < int_len {
            return Err(invalid("integer part shorter than its head announces"));
        }
        if bytes[1..].iter().any(|b| digit(*b).is_none()) {
            return Err(invalid("digits must be 0-9, A-Z or a-z"));
        }
        if bytes.len() > int_len && bytes.last() == Some(&b'0') {
            return Err(invalid("fraction must not end in 0"));
        }
        if bytes == SMALLEST_INT {
            return Err(invalid("reserved smallest key"));
        }
        Ok(OrderKey(key.to_string()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key strictly between `low` and `high`; `None` is an open end.
    ///
    /// Fails with [`OrderKeyError::NotOrdered`] unless `low < high`, and with
    /// [`OrderKeyError::TooLong`] if the gap is so narrow that the key would exceed
    /// [`OrderKey::MAX_LEN`].
    pub fn between(
        low: Option<&OrderKey>,
        high: Option<&OrderKey>,
    ) -> Result<OrderKey, OrderKeyError> {
        let key = match (low, high) {
            (None, None) => b"a0".to_vec(),
            (None, Some(high)) => before(high.0.as_bytes()),
            (Some(low), None) => after(low.0.as_bytes()),
            (Some(low), Some(high)) => {
                if low >= high {
                    return Err(OrderKeyError::NotOrdered {
                        low: low.0.clone(),
                        high: high.0.clone(),
                    });
                }
                inside(low.0.as_bytes(), high.0.as_bytes())
            }
        };
        if key.len() > Self::MAX_LEN {
            return Err(OrderKeyError::TooLong {
                len: key.len(),
                max: Self::MAX_LEN,
            });
        }
        // Built only from ASCII digits and heads.
        Ok(OrderKey(String::from_utf8_lossy(&key).into_owned()))
    }
}

/// Splits a valid key into its integer part and fraction.
fn split(key: &[u8]) -> (&[u8], &[u8]) {
    let n = key
        .first()
        .and_then(|h| int_len(*h))
        .unwrap_or(key.len())
        .min(key.len());
    key.split_at(n)
}

/// A key below `high`.
fn before(high: &[u8]) -> Vec<u8> {
    let (int, frac) = split(high);
    if int == SMALLEST_INT {
        // Valid keys are never the bare smallest integer, so `frac` is not empty.
        return [int, &midpoint(b"", Some(frac))].concat();
    }
    if !frac.is_empty() {
        // The integer part alone sorts before itself with a fraction.
        return int.to_vec();
    }
    match decrement(int) {
        // The bare smallest integer is reserved: step into its fraction instead.
        Some(lower) if lower == SMALLEST_INT => [&lower[..], &midpoint(b"", None)].concat(),
        Some(lower) => lower,
        None => [int, &midpoint(b"", Some(frac))].concat(),
    }
}

/// A key above `low`.
fn after(low: &[u8]) -> Vec<u8> {
    let (int, frac) = split(low);
    match increment(int) {
        Some(higher) => higher,
        // The largest integer: grow the fraction instead.
        None => [int, &midpoint(frac, None)].concat(),
    }
}

/// A key strictly between `low < high`.
fn inside(low: &[u8], high: &[u8]) -> Vec<u8> {
    let (low_int, low_frac) = split(low);
    let (high_int, high_frac) = split(high);
    if low_int == high_int {
        return [low_int, &midpoint(low_frac, Some(high_frac))].concat();
    }
    match increment(low_int) {
        // The next integer is short and still below `high`.
        Some(next) if next.as_slice() < high => next,
        // Adjacent integers: extend `low`'s fraction, which stays below `next`.
        _ => [low_int, &midpoint(low_frac, None)].concat(),
    }
}

/// Fraction digits strictly between `low` and `high` (`None`: open end), where
/// `low < high` as fractions and neither ends in `0`. The result never ends in `0`.
fn midpoint(mut low: &[u8], mut high: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        if let Some(h) = high {
            // Copy the common prefix; a missing digit of `low` counts as 0.
            let n = h
                .iter()
                .enumerate()
                .take_while(|(i, d)| low.get(*i).copied().unwrap_or(b'0') == **d)
                .count();
            out.extend_from_slice(&h[..n]);
            low = low.get(n..).unwrap_or(&[]);
            high = Some(&h[n..]);
        }
        let d_low = low.first().map_or(0, |b| value(*b));
        let d_high = high.and_then(|h| h.first()).map_or(62, |b| value(*b));
        if d_high > d_low + 1 {
            // Room for a digit between: it is at least 1, so no trailing zero.
            out.push(DIGITS[(d_low + d_high) / 2]);
            return out;
        }
        if let Some(h) = high {
            if h.len() > 1 {
                // `high` goes on after its first digit: that digit alone is below it
                // and, being one above `low`'s, above `low`.
                out.push(h[0]);
                return out;
            }
        }
        // Keep `low`'s digit and find room after it, with no upper bound left.
        out.push(DIGITS[d_low.min(61)]);
        low = low.get(1..).unwrap_or(&[]);
        high = None;
    }
}

/// The next integer part, or `None` after the largest (`z` and 26 `z`s).
fn increment(int: &[u8]) -> Option<Vec<u8>> {
    let (&head, digits) = int.split_first()?;
    let mut digits = digits.to_vec();
    for d in digits.iter_mut().rev() {
        let v = value(*d);
        if v < 61 {
            *d = DIGITS[v + 1];
            return Some([&[head][..], &digits].concat());
        }
        *d = b'0';
    }
    // Every digit carried: the next integer has one more (positive) or one fewer
    // (negative) digit, announced by the next head.
    let len = digits.len();
    match head {
        b'Z' => Some(b"a0".to_vec()),
        b'a'..=b'y' => Some([vec![head + 1], vec![b'0'; len + 1]].concat()),
        b'A'..=b'Y' => Some([vec![head + 1], vec![b'0'; len.saturating_sub(1)]].concat()),
        _ => None,
    }
}

/// The previous integer part, or `None` before the smallest.
fn decrement(int: &[u8]) -> Option<Vec<u8>> {
    let (&head, digits) = int.split_first()?;
    let mut digits = digits.to_vec();
    for d in digits.iter_mut().rev() {
        let v = value(*d);
        if v > 0 {
            *d = DIGITS[v - 1];
            return Some([&[head][..], &digits].concat());
        }
        *d = b'z';
    }
    let len = digits.len();
    match head {
        b'a' => Some(b"Zz".to_vec()),
        b'b'..=b'z' => Some([vec![head - 1], vec![b'z'; len.saturating_sub(1)]].concat()),
        b'B'..=b'Z' => Some([vec![head - 1], vec![b'z'; len + 1]].concat()),
        _ => None,
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderKey({})", self.0)
    }
}

impl std::str::FromStr for OrderKey {
    type Err = OrderKeyError;

    fn from_str(s: &str) -> Result<OrderKey, OrderKeyError> {
        OrderKey::parse(s)
    }
}

impl Serialize for OrderKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

struct OrderKeyVisitor;

impl<'de> Visitor<'de> for OrderKeyVisitor {
    type Value = OrderKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an order key string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OrderKey, E> {
        OrderKey::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for OrderKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrderKey, D::Error> {
        d.deserialize_str(OrderKeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> OrderKey {
        OrderKey::parse(s).unwrap()
    }

    /// A small deterministic generator, so the test needs no randomness crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn assert_valid(k: &OrderKey) {
        assert_eq!(OrderKey::parse(k.as_str()).as_ref(), Ok(k), "{k:?}");
    }

    #[test]
    fn ten_thousand_appends_stay_short() {
        let mut last = OrderKey::first();
        for _ in 0..10_000 {
            let next = OrderKey::between(Some(&last), None).unwrap();
            assert!(next > last);
            assert_valid(&next);
            last = next;
        }
        assert!(last.as_str().len() < 8, "{last:?}");
    }

    #[test]
    fn ten_thousand_prepends_stay_short() {
        let mut first = OrderKey::first();
        for _ in 0..10_000 {
            let next = OrderKey::between(None, Some(&first)).unwrap();
            assert!(next < first);
            assert_valid(&next);
            first = next;
        }
        assert!(first.as_str().len() < 8, "{first:?}");
    }

    #[test]
    fn front_and_random_inserts_keep_order() {
        let mut keys = vec![OrderKey::first()];
        let mut rng = Lcg(7);
        for i in 0..1_000 {
            let at = if i % 3 == 0 {
                0
            } else {
                rng.below(keys.len() + 1)
            };
            let low = at.checked_sub(1).map(|j| &keys[j]);
            let high = keys.get(at);
            let k = OrderKey::between(low, high).unwrap();
            assert_valid(&k);
            if let Some(low) = low {
                assert!(low < &k);
            }
            if let Some(high) = high {
                assert!(&k < high);
            }
            keys.insert(at, k);
        }
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn carries_across_heads() {
        let cases = [
            ("az", None, "b00"),
            ("Zz", None, "a0"),
            ("Yzz", None, "Z0"),
            ("a0", Some("a1"), "a0V"),
            ("a0V", Some("a1"), "a0k"),
        ];
        for (low, high, want) in cases {
            let high = high.map(key);
            let got = OrderKey::between(Some(&key(low)), high.as_ref()).unwrap();
            assert_eq!(got.as_str(), want);
        }
        assert_eq!(
            OrderKey::between(None, Some(&key("b00"))).unwrap().as_str(),
            "az"
        );
        assert_eq!(
            OrderKey::between(None, Some(&key("a0"))).unwrap().as_str(),
            "Zz"
        );
        assert_eq!(
            OrderKey::between(None, Some(&key("a0V"))).unwrap().as_str(),
            "a0"
        );
        assert_eq!(OrderKey::between(None, None).unwrap(), OrderKey::first());
    }

    #[test]
    fn narrow_gaps_and_extremes() {
        let below = |high: &OrderKey| OrderKey::between(None, Some(high)).unwrap();
        // Just above the reserved smallest integer.
        let tiny = key(&format!("A{}1", "0".repeat(25)));
        let t = below(&tiny);
        assert!(t < tiny);
        assert_valid(&t);
        let t2 = below(&t);
        assert!(t2 < t);
        assert_valid(&t2);
        // The largest integer can still be appended to.
        let huge = key(&format!("z{}", "z".repeat(26)));
        let h = OrderKey::between(Some(&huge), None).unwrap();
        assert!(h > huge);
        assert_valid(&h);
        // Fractions that differ only deep down.
        let (a, b) = (key("a0zzzz1"), key("a0zzzz2"));
        let m = OrderKey::between(Some(&a), Some(&b)).unwrap();
        assert!(a < m && m < b);
        assert_valid(&m);
        let (a, b) = (key("a0"), key("a001"));
        let m = OrderKey::between(Some(&a), Some(&b)).unwrap();
        assert!(a < m && m < b, "{m:?}");
        assert_valid(&m);
    }

    #[test]
    fn repeated_bisection_ends_in_a_typed_error() {
        let (low, mut high) = (key("a0"), key("a1"));
        let mut result = Ok(());
        for _ in 0..2_000 {
            match OrderKey::between(Some(&low), Some(&high)) {
                Ok(k) => high = k,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        assert!(matches!(result, Err(OrderKeyError::TooLong { .. })));
    }

    #[test]
    fn between_rejects_unordered_bounds() {
        let (a, b) = (key("a0"), key("a1"));
        assert!(matches!(
            OrderKey::between(Some(&b), Some(&a)),
            Err(OrderKeyError::NotOrdered { .. })
        ));
        assert!(OrderKey::between(Some(&a), Some(&a)).is_err());
    }

    #[test]
    fn parse_rejects_bad_keys() {
        let long = format!("a0{}", "1".repeat(127));
        let smallest = String::from_utf8(SMALLEST_INT.to_vec()).unwrap();
        for bad in [
            "",
            "0",
            "a",
            "b0",
            "a0 ",
            "a-",
            "a00",
            "a0é",
            "é",
            "!0",
            long.as_str(),
            smallest.as_str(),
        ] {
            assert!(OrderKey::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["a0", "a01", "Zz", "b0z", "zzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            assert_valid(&key(good));
        }
        assert!(serde_json::from_str::<OrderKey>("\"a00\"").is_err());
        assert_eq!(
            serde_json::from_str::<OrderKey>("\"a0\"").unwrap(),
            key("a0")
        );
    }
}
