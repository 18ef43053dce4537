//! Command line (SPEC §3).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keeps Elasticsearch indices equal to MySQL tables by tailing the binlog.
#[derive(Debug, Parser)]
#[command(name = "binlog2es", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream changes until SIGTERM/SIGINT, then drain and write the checkpoint.
    Run(ConfigArg),
    /// Validate the configuration and check both servers' prerequisites.
    Check(ConfigArg),
    /// Print the checkpoint (position, GTID set, time).
    Status(ConfigArg),
    /// Compare every configured table with its index; `--repair` re-syncs the differences.
    Verify(VerifyArgs),
}

/// `verify --config FILE [--repair]`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Configuration file (TOML).
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write missing/different documents and delete extra ones, then check them again.
    #[arg(long)]
    pub repair: bool,
}

/// `--config FILE` or `BINLOG2ES_CONFIG`.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "BINLOG2ES_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}
