//! A process's memory, from Linux's `/proc/<pid>/status`.
//!
//! `VmRSS` is what the process holds now; `VmHWM` is the kernel's own high-water
//! mark of it, so the peak is exact without sampling. Elsewhere (no `/proc`) the
//! figures are simply absent from the report.

use serde::Serialize;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kb: u64,
    /// Highest resident so far (`VmHWM`).
    pub peak_kb: u64,
}

/// Reads the memory of process `pid`; `None` if it is gone or `/proc` is missing.
pub fn read(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// The memory of this process.
pub fn read_self() -> Option<Memory> {
    read(std::process::id())
}

/// Picks `VmRSS` and `VmHWM` out of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        rss_kb: field("VmRSS:")?,
        peak_kb: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_lines() {
        let text =
            "Name:\ttether\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kb: 40960,
                peak_kb: 51234
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/status").exists() {
            let m = read_self().unwrap();
            assert!(m.rss_kb > 0 && m.peak_kb >= m.rss_kb);
        }
    }
}
