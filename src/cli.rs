//! Command line (SPEC §3).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keeps Elasticsearch indices equal to MySQL tables by tailing the binlog.
#[derive(Debug, Parser)]
#[command(name = "binlog2es", version = binlog2es::VERSION, about)]
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
    /// Print the checkpoint (position, GTID set, time) and how far behind the server it is.
    Status(StatusArgs),
    /// Compare every configured table with its index; `--repair` re-syncs the differences.
    Verify(VerifyArgs),
    /// Ask the running daemon to copy one table again while it keeps streaming.
    Resync(ResyncArgs),
    /// Ask the running daemon to rebuild one index behind its alias with the current rule,
    /// while streaming, then switch readers to it atomically.
    Reindex(ReindexArgs),
    /// Ask the running daemon's `/readyz` (exit 0 when ready): a container health check.
    Probe(ConfigArg),
    /// Print the version and the build's git revision.
    Version,
    /// Print a shell completion script (e.g. `binlog2es completions bash > /etc/bash_completion.d/binlog2es`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `binlog2es man > /usr/local/share/man/man1/binlog2es.1`.
    Man,
}

/// `status --config FILE [--json]`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Configuration file (TOML).
    #[command(flatten)]
    pub config: ConfigArg,
    /// One JSON object instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `resync --config FILE --table db.table`.
#[derive(Debug, clap::Args)]
pub struct ResyncArgs {
    /// Configuration file of the running daemon (TOML).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The table to copy again, as `db.table`.
    #[arg(long, value_name = "DB.TABLE")]
    pub table: String,
}

/// `reindex --config FILE --index NAME`.
#[derive(Debug, clap::Args)]
pub struct ReindexArgs {
    /// Configuration file of the running daemon (TOML).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The index to rebuild, as readers name it (the rule's index).
    #[arg(long, value_name = "NAME")]
    pub index: String,
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
    /// Only this table (as `db.table`) instead of every configured one.
    #[arg(long, value_name = "DB.TABLE")]
    pub table: Option<String>,
}

/// `--config FILE` or `BINLOG2ES_CONFIG`.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "BINLOG2ES_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}
