//! The Tether server: configuration → database → router → serve.
//!
//! Everything lives in the library (`tether::server`); this only wires it up and
//! turns a bad configuration or an unusable database into a clear message and a
//! non-zero exit instead of a panic.

use std::process::ExitCode;

use tether::server::{config::Config, http};

#[tokio::main]
async fn main() -> ExitCode {
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
