//! Subcommands. Each lives in its own module; this one only declares and dispatches.

mod completions;
mod config_file;
mod exec;
mod exec_custom;
mod exec_remote;
mod exec_vm;
mod helper;
mod lint;
mod list;
mod register;
mod run;
mod service;
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
    /// Install the runner as a system service (a systemd unit).
    Install(service::InstallArgs),
    /// Remove the system service.
    Uninstall(service::ServiceArgs),
    /// Start the system service.
    Start(service::ServiceArgs),
    /// Stop the system service.
    Stop(service::ServiceArgs),
    /// Restart the system service.
    Restart(service::ServiceArgs),
    /// Show whether the system service is running.
    Status(service::ServiceArgs),
    /// Print the completion script for a shell.
    Completions(completions::CompletionsArgs),
    /// Print the manual page, or write all of them into a directory.
    Man(completions::ManArgs),
    /// What the helper container of a Kubernetes job runs (not for direct use).
    #[command(hide = true)]
    Helper(helper::HelperArgs),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `lint` and `exec` report on their own console; the runner commands log as gitlab-runner.
    let logging = || crate::log::Logging::init(&cli.log);
    match cli.command {
        Command::Lint(args) => lint::run(args),
        Command::Helper(args) => helper::run(args),
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
        Command::Install(args) => service::install(args),
        Command::Uninstall(args) => service::control(service::Control::Uninstall, args),
        Command::Start(args) => service::control(service::Control::Start, args),
        Command::Stop(args) => service::control(service::Control::Stop, args),
        Command::Restart(args) => service::control(service::Control::Restart, args),
        Command::Status(args) => service::control(service::Control::Status, args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}
