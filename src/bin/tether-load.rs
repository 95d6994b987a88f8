//! `tether-load`: the load generator's command line (the work is in
//! `tether::loadgen`). Prints the report as a table on stdout, progress on stderr,
//! and writes the JSON report with `--json FILE`.
//!
//! Exit status: 0 verified (no errors, every acknowledged op reached every
//! subscriber); 1 the run failed; 2 bad arguments; 3 the run finished but found
//! errors or missing deliveries.

use std::process::ExitCode;

use tether::loadgen::{self, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match loadgen::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", loadgen::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::from(2);
        }
    };
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
