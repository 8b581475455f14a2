//! `humanproof`: the control plane binary. Parses the command line and hands over to the
//! library; see `humanproof --help`.

use clap::Parser;
use humanproof_control_plane::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    Cli::parse().run().await
}
