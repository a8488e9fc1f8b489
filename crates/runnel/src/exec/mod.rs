//! `runnel exec`: the options for runnel-local and the printing of what it reports.

mod run;
mod varfile;

pub(crate) use run::{Options, read_variables, run};
