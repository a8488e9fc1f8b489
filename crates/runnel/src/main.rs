//! The `runnel` command line: argument parsing and wiring only.

mod cmd;
mod exec;
mod exit_code;
mod log;
mod report;
mod user_error;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code::of_error(&err))
        }
    }
}
