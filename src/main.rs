//! Binary edge: parse the command line, load configuration, dispatch, and map the
//! outcome to an exit code (0 ok, 1 fatal or problem found, 2 bad configuration).

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cli;

use std::process::ExitCode;

use binlog2es::config::{Config, LogFormat};
use binlog2es::telemetry::logging;
use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let arg = match &cli.command {
        Command::Run(arg)
        | Command::Check(arg)
        | Command::Probe(arg)
        | Command::Status(cli::StatusArgs { config: arg, .. })
        | Command::Verify(cli::VerifyArgs { config: arg, .. })
        | Command::Resync(cli::ResyncArgs { config: arg, .. })
        | Command::Reindex(cli::ReindexArgs { config: arg, .. }) => arg,
        // The commands that need no configuration.
        Command::Version => {
            println!("binlog2es {}", binlog2es::VERSION);
            return ExitCode::SUCCESS;
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "binlog2es", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let config = match Config::load(&arg.config).and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Run(_) => {
            logging::init(config.logging.format, &config.logging.level);
            // Handlers first: a SIGTERM during start-up then drains instead of killing.
            let shutdown = {
                let _inside = runtime.enter();
                binlog2es::shutdown::signal()
            };
            match runtime.block_on(binlog2es::run(config, shutdown)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // `run` logged it when it got that far; this one plain line is for
                    // operators and supervisors reading stderr.
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Check(_) => {
            logging::init(LogFormat::Text, "error");
            match runtime.block_on(binlog2es::check(config)) {
                Ok((findings, ok)) => {
                    for f in &findings {
                        println!("{f}");
                    }
                    if ok {
                        println!("all checks passed");
                        ExitCode::SUCCESS
                    } else {
                        println!("problems found");
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Status(args) => {
            match runtime.block_on(binlog2es::commands::status_report(&config)) {
                Ok(report) if args.json => {
                    println!("{}", report.to_json());
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Probe(_) => answered(runtime.block_on(binlog2es::commands::probe(&config))),
        Command::Version | Command::Completions { .. } | Command::Man => ExitCode::SUCCESS,
        Command::Resync(args) => {
            answered(runtime.block_on(binlog2es::commands::request_resync(&config, &args.table)))
        }
        Command::Reindex(args) => {
            answered(runtime.block_on(binlog2es::commands::request_reindex(&config, &args.index)))
        }
        Command::Verify(args) => {
            logging::init(LogFormat::Text, "error");
            let only = args.table.as_deref();
            match runtime.block_on(binlog2es::commands::verify_tables(
                &config,
                args.repair,
                only,
            )) {
                Ok(report) => {
                    print!("{report}");
                    if report.has_differences() {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

/// Prints the daemon's answer to an operations request: exit 0 accepted, 1 otherwise.
fn answered(answer: Result<String, binlog2es::commands::ResyncError>) -> ExitCode {
    match answer {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
