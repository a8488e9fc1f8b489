//! Subcommands. Each lives in its own module; this one only declares and dispatches.

mod config_file;
mod exec;
mod lint;
mod list;
mod register;
mod run;
mod unregister;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A GitLab-compatible CI runner: runs `.gitlab-ci.yml` pipelines on this machine, or serves as a
/// gitlab-runner.
#[derive(Debug, Parser)]
#[command(name = "runnel", version, about, after_help = crate::exit_code::HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    log: crate::log::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load a .gitlab-ci.yml and print the resolved pipeline, or its errors.
    #[command(after_help = crate::exit_code::HELP)]
    Lint(lint::LintArgs),
    /// Run the repository's pipeline on this machine.
    #[command(after_help = crate::exit_code::HELP)]
    Exec(exec::ExecArgs),
    /// Register a runner with a GitLab instance (gitlab-runner's flags and prompts).
    Register(Box<register::RegisterArgs>),
    /// Run the runner daemon: poll GitLab for jobs and execute them.
    Run(run::RunArgs),
    /// Check that GitLab still knows the configured runners.
    Verify(verify::VerifyArgs),
    /// Remove runners from GitLab and from config.toml.
    Unregister(unregister::UnregisterArgs),
    /// List the runners in config.toml.
    List(list::ListArgs),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `lint` and `exec` report on their own console; the runner commands log as gitlab-runner.
    let logging = || crate::log::Logging::init(&cli.log);
    match cli.command {
        Command::Lint(args) => lint::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Register(args) => {
            logging()?;
            register::run(*args)
        }
        Command::Run(args) => run::run(args, logging()?),
        Command::Verify(args) => {
            logging()?;
            verify::run(args)
        }
        Command::Unregister(args) => {
            logging()?;
            unregister::run(args)
        }
        Command::List(args) => {
            logging()?;
            list::run(args)
        }
    }
}
