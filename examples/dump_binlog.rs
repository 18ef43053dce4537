//! Prints what a binlog file decodes to through the daemon's own path: one line per document
//! change, then the located errors.
//!
//! `cargo run --example dump_binlog -- rust_mysql_common/json.binlog.000001` (a path under
//! ../shared/binlog-samples, or an absolute path).

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/offline.rs"]
mod offline;
#[path = "../tests/common/samples.rs"]
mod samples;

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: cargo run --example dump_binlog -- <binlog file>");
        return ExitCode::from(2);
    };
    let decoded = samples::decode_file(&file);
    println!("server {}", decoded.server_version);
    for c in &decoded.changes {
        println!("{} {} id={} {}", c.table, c.op, c.id, c.source);
    }
    for e in &decoded.errors {
        println!("ERROR {e}");
    }
    ExitCode::SUCCESS
}
