//! A progress line per second on stderr while writers write, so a long run shows
//! at once whether it is healthy (rate reached, deliveries keeping up, no errors).

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

use super::{ledger::Ledger, report::number, rss, stats::Errors, writers::WriterShared};

/// What the progress line reads.
pub struct Watch {
    pub ledger: Arc<Ledger>,
    pub writers: Arc<WriterShared>,
    pub errors: Arc<Errors>,
    pub subscribers: usize,
    pub field_ops_per_op: u64,
    pub server_pid: Option<u32>,
}

/// Prints until `stop` flips.
pub async fn report_every_second(watch: Watch, mut stop: watch::Receiver<bool>) {
    let start = Instant::now();
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last_acked = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let acked = watch.ledger.acked_total();
        let per_second = acked - last_acked;
        last_acked = acked;
        let mut line = format!(
            "[{:>4.0}s] acked {} ops ({} ops/s, {} field ops/s)",
            start.elapsed().as_secs_f64(),
            acked,
            number(per_second as f64),
            number((per_second * watch.field_ops_per_op) as f64),
        );
        if watch.subscribers > 0 {
            let missing = watch.ledger.missing(watch.subscribers);
            let fanout = watch.ledger.fanout.summary();
            line.push_str(&format!(
                " · {} deliveries pending · fan-out p99 {:.2} ms",
                missing, fanout.p99_ms
            ));
        } else {
            let push = watch.writers.push_latency.summary();
            line.push_str(&format!(" · push p99 {:.1} ms", push.p99_ms));
        }
        line.push_str(&format!(" · errors {}", watch.errors.total()));
        if let Some(memory) = watch.server_pid.and_then(rss::read) {
            line.push_str(&format!(
                " · server RSS {:.1} MiB",
                memory.rss_kb as f64 / 1024.0
            ));
        }
        eprintln!("{line}");
    }
}
