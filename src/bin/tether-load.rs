//! `tether-load`: the load generator's command line (the work is in
//! `tether::loadgen`). Prints the report as a table on stdout, progress on stderr,
//! and writes the JSON report with `--json FILE`.
//!
//! Exit status: 0 verified (no errors, every acknowledged op reached every
//! subscriber), or `--help`; 1 the run failed; 2 bad arguments; 3 the run finished
//! but found errors or missing deliveries.

use std::process::ExitCode;

use clap::Parser;
use tether::loadgen::{self, Args};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Args::parse().into_config();
    let report = match loadgen::run(&config).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{}", report.to_table());
    if let Some(path) = &config.json {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            eprintln!("tether-load: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
