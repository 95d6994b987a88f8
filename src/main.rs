//! The Tether server: configuration → database → router → serve. The command line
//! takes only `--help` (which lists the configuration keys) and `--version`.
//!
//! Everything lives in the library (`tether::server`); this only wires it up and
//! turns a bad configuration or an unusable database into a clear message and a
//! non-zero exit instead of a panic.

use std::process::ExitCode;

use tether::server::{config::Config, http};

#[tokio::main]
async fn main() -> ExitCode {
    arguments();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tether: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    match http::start(config).await {
        Ok(server) => {
            server.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tether: {e}");
            ExitCode::from(1)
        }
    }
}

/// The command line takes no arguments but `--help` (which lists the configuration's
/// keys) and `--version`; anything else is refused (exit code 2) before the server
/// starts, rather than ignored.
fn arguments() {
    clap::Command::new("tether")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Tether: shared, offline-first lists, kept in sync (serves the app and its sync API)",
        )
        .after_help(tether::server::config::keys_help())
        .get_matches();
}
