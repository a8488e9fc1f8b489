//! The HTTP side: routes, the request gate, and the handlers.

mod crud;
mod gate;
pub(crate) mod listener;
mod log;
mod router;
mod stream;
mod watch;

pub(crate) use router::router;
