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
}

/// `--config FILE` or `BINLOG2ES_CONFIG`.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "BINLOG2ES_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}
