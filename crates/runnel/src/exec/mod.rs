//! `runnel exec`: the wiring between the loader, the scheduler, the planner and the shell
//! executor.

mod driver;
mod git;
mod load;
mod run;
mod select;
mod shell;
mod varfile;

pub(crate) use git::git_line;
pub(crate) use run::{Options, local_docker_config, run};
