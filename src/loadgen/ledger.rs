//! The ledger: when each op was made, whether it was acknowledged, and which
//! subscribers received it.
//!
//! Every measured op writes a unique [`Token`] (`w<writer>-<n>`) as a todo's
//! title. The writer notes the time it made the op; a subscriber that finds the
//! token in a `changes` message looks the op up and records the latency. Writers and
//! subscribers share this process, so both times come from one monotonic clock.
//!
//! At the end, [`Ledger::verify`] checks that every acknowledged op reached every
//! subscriber exactly once (a duplicate or a gap is a bug the benchmark must show).

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
        RwLock,
    },
    time::Instant,
};

use serde::Serialize;

use super::stats::{Histogram, Summary};

/// Names one measured op: the `n`-th op of writer `writer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub writer: u32,
    pub n: u64,
}

impl Token {
    /// The title that carries the token.
    pub fn title(self) -> String {
        format!("w{}-{}", self.writer, self.n)
    }

    /// The token in a title, if the title is one.
    pub fn parse(title: &str) -> Option<Token> {
        let (writer, n) = title.strip_prefix('w')?.split_once('-')?;
        Some(Token {
            writer: writer.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

/// One op: when it was made, how many subscribers have it, and when the last did.
struct OpSlot {
    made_ns: u64,
    reached: AtomicU32,
    last_ns: AtomicU64,
}

#[derive(Default)]
struct WriterLog {
    ops: RwLock<Vec<OpSlot>>,
    /// Ops `0..acked` are acknowledged.
    acked: AtomicU64,
}

/// What a subscriber made of a received token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    First,
    Duplicate,
    /// Not an op of this run (a bug in the server or the ledger).
    Unknown,
}

/// Which ops one subscriber has seen: a bit per op, per writer.
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<Vec<u64>>,
}

impl Seen {
    /// Marks `token`; false if it was already marked.
    fn mark(&mut self, token: Token) -> bool {
        let w = token.writer as usize;
        if self.bits.len() <= w {
            self.bits.resize_with(w + 1, Vec::new);
        }
        let words = &mut self.bits[w];
        let (word, bit) = ((token.n / 64) as usize, token.n % 64);
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        let fresh = words[word] & (1 << bit) == 0;
        words[word] |= 1 << bit;
        fresh
    }
}

/// Did every acknowledged op reach every subscriber?
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    pub subscribers: usize,
    pub acked_ops: u64,
    /// `acked_ops × subscribers`.
    pub expected: u64,
    /// Deliveries of acknowledged ops (first receipts only).
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub unknown: u64,
    /// Per op: from made to the last subscriber receiving it (complete ops only).
    pub to_all: Summary,
}

/// Shared by every writer and subscriber of a run.
pub struct Ledger {
    origin: Instant,
    writers: Vec<WriterLog>,
    /// Writer made → subscriber received, one sample per delivery.
    pub fanout: Histogram,
    duplicates: AtomicU64,
    unknown: AtomicU64,
}

impl Ledger {
    pub fn new(writers: usize) -> Ledger {
        Ledger {
            origin: Instant::now(),
            writers: (0..writers).map(|_| WriterLog::default()).collect(),
            fanout: Histogram::default(),
            duplicates: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the ledger was made: the one clock of the run.
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Notes a new op of `writer`, made at `made_ns`; returns its token.
    pub fn made(&self, writer: u32, made_ns: u64) -> Token {
        let mut ops = self.writers[writer as usize]
            .ops
            .write()
            .unwrap_or_else(|e| e.into_inner());
        ops.push(OpSlot {
            made_ns,
            reached: AtomicU32::new(0),
            last_ns: AtomicU64::new(0),
        });
        Token {
            writer,
            n: ops.len() as u64 - 1,
        }
    }

    /// Ops `0..count` of `writer` are acknowledged.
    pub fn acked(&self, writer: u32, count: u64) {
        self.writers[writer as usize]
            .acked
            .fetch_max(count, Relaxed);
    }

    /// Ops made so far, acknowledged or not.
    pub fn made_total(&self) -> u64 {
        self.writers
            .iter()
            .map(|w| w.ops.read().unwrap_or_else(|e| e.into_inner()).len() as u64)
            .sum()
    }

    pub fn acked_total(&self) -> u64 {
        self.writers.iter().map(|w| w.acked.load(Relaxed)).sum()
    }

    /// A subscriber received `token` at `at_ns`.
    pub fn receive(&self, token: Token, at_ns: u64, seen: &mut Seen) -> Receipt {
        let Some(log) = self.writers.get(token.writer as usize) else {
            self.unknown.fetch_add(1, Relaxed);
            return Receipt::Unknown;
        };
        let ops = log.ops.read().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = ops.get(token.n as usize) else {
            self.unknown.fetch_add(1, Relaxed);
            return Receipt::Unknown;
        };
        if !seen.mark(token) {
            self.duplicates.fetch_add(1, Relaxed);
            return Receipt::Duplicate;
        }
        self.fanout.record_ns(at_ns.saturating_sub(slot.made_ns));
        slot.reached.fetch_add(1, Relaxed);
        slot.last_ns.fetch_max(at_ns, Relaxed);
        Receipt::First
    }

    /// Deliveries of acknowledged ops still missing for `subscribers` subscribers.
    pub fn missing(&self, subscribers: usize) -> u64 {
        let want = subscribers as u64;
        self.writers
            .iter()
            .map(|log| {
                let acked = log.acked.load(Relaxed) as usize;
                let ops = log.ops.read().unwrap_or_else(|e| e.into_inner());
                ops.iter()
                    .take(acked)
                    .map(|s| want.saturating_sub(u64::from(s.reached.load(Relaxed))))
                    .sum::<u64>()
            })
            .sum()
    }

    /// The final account, for `subscribers` subscribers.
    pub fn verify(&self, subscribers: usize) -> Delivery {
        let want = subscribers as u32;
        let to_all = Histogram::default();
        let mut delivery = Delivery {
            subscribers,
            duplicates: self.duplicates.load(Relaxed),
            unknown: self.unknown.load(Relaxed),
            ..Delivery::default()
        };
        for log in &self.writers {
            let acked = log.acked.load(Relaxed) as usize;
            let ops = log.ops.read().unwrap_or_else(|e| e.into_inner());
            for slot in ops.iter().take(acked) {
                let reached = slot.reached.load(Relaxed);
                delivery.acked_ops += 1;
                delivery.delivered += u64::from(reached.min(want));
                delivery.missing += u64::from(want.saturating_sub(reached));
                if reached >= want && want > 0 {
                    to_all.record_ns(slot.last_ns.load(Relaxed).saturating_sub(slot.made_ns));
                }
            }
        }
        delivery.expected = delivery.acked_ops * subscribers as u64;
        delivery.to_all = to_all.summary();
        delivery
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_other_titles() {
        let t = Token { writer: 3, n: 17 };
        assert_eq!(t.title(), "w3-17");
        assert_eq!(Token::parse("w3-17"), Some(t));
        for other in ["pool 3.1", "w3", "w-1", "x3-1", "w3-x"] {
            assert_eq!(Token::parse(other), None, "{other}");
        }
    }

    #[test]
    fn counts_deliveries_duplicates_and_gaps() {
        let ledger = Ledger::new(2);
        let a = ledger.made(0, 100);
        let b = ledger.made(0, 200);
        let c = ledger.made(1, 300);
        ledger.acked(0, 2);
        ledger.acked(1, 1);
        let (mut one, mut two) = (Seen::default(), Seen::default());
        assert_eq!(ledger.receive(a, 1_100, &mut one), Receipt::First);
        assert_eq!(ledger.receive(a, 1_100, &mut one), Receipt::Duplicate);
        assert_eq!(ledger.receive(b, 1_200, &mut one), Receipt::First);
        assert_eq!(ledger.receive(c, 1_300, &mut one), Receipt::First);
        assert_eq!(ledger.receive(a, 2_100, &mut two), Receipt::First);
        let ghost = Token { writer: 0, n: 99 };
        assert_eq!(ledger.receive(ghost, 0, &mut two), Receipt::Unknown);
        assert_eq!(ledger.missing(2), 2);
        let d = ledger.verify(2);
        assert_eq!((d.acked_ops, d.expected, d.delivered), (3, 6, 4));
        assert_eq!((d.missing, d.duplicates, d.unknown), (2, 1, 1));
        // Only `a` reached both: made at 100, last received at 2,100.
        assert_eq!(d.to_all.count, 1);
        assert_eq!(d.to_all.max_ms, 0.002);
        assert_eq!(ledger.fanout.count(), 4);
    }
}
