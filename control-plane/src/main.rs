//! `humanproof`: the control plane binary. Parses the command line, sets up the log, and
//! hands over to the library; see `humanproof --help`.

use std::sync::Mutex;

use clap::Parser;
use humanproof_control_plane::cli::{Cli, LogTarget};
use humanproof_control_plane::clock::Clock;
use humanproof_control_plane::logs::DailyLogFiles;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let log = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,sqlx=warn".into()),
    );
    match cli.log_target() {
        LogTarget::Stdout => log.with_writer(std::io::stdout).init(),
        LogTarget::Stderr => log.with_writer(std::io::stderr).init(),
        LogTarget::Files(dir) => log
            .with_ansi(false)
            .with_writer(Mutex::new(DailyLogFiles::new(&dir, Clock::system())?))
            .init(),
    }
    cli.run().await
}
