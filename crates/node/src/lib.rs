//! zongzi-node: the Node.js binding of the zongzi engine.
//!
//! Thin by design: each exported method checks its arguments, calls the engine and maps the
//! error to a JavaScript error whose `code` is the engine's stable code. State machines live in
//! JavaScript; the engine reaches them through one thread-safe function per host.

mod boundary;
mod certificates;
mod error;

pub use error::CODES;
mod host;
mod logs;
mod machines;
mod metrics;
mod types;

pub use certificates::*;
pub use host::*;
pub use metrics::*;
pub use types::*;
