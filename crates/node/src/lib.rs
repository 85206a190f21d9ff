//! zongzi-node: the Node.js binding of the zongzi engine.
//!
//! Thin by design: each exported method checks its arguments, calls the engine and maps the
//! error to `ERR_CODE: message`. State machines live in JavaScript; the engine reaches them
//! through one thread-safe function per host.

mod convert;
mod error;
mod host;
mod state_machine;
mod types;

pub use host::*;
pub use types::*;
