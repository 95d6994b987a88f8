//! CPU time a process used, from Linux's `/proc/<pid>/stat`.
//!
//! On a shared machine wall-clock throughput moves with whatever else runs, but the
//! CPU time a process spends per acknowledged op barely does: it is the figure to
//! compare when judging an optimisation. `utime + stime` count every thread of the
//! process, including threads that have exited.

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`): 100 on every
/// Linux this runs on (x86-64 and arm64 alike).
const TICKS_PER_SECOND: f64 = 100.0;

/// Seconds of CPU (user + system) process `pid` has used; `None` without `/proc`.
pub fn seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Seconds of CPU this process has used.
pub fn own_seconds() -> Option<f64> {
    seconds(std::process::id())
}

/// `utime + stime` out of a `/proc/<pid>/stat` line, in seconds.
pub fn parse_stat(text: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: skip past its end.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_plus_system_ticks() {
        let line =
            "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(own_seconds().is_some());
        }
    }
}
