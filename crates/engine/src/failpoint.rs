//! Failpoints: named places in the engine where a crash test can stop a process dead.
//!
//! A test sets `ZONGZI_FAILPOINTS` to a comma-separated list of names before it starts a
//! host process. When a thread reaches a listed failpoint, it writes `failpoint <name>` to
//! stderr and parks for good, so the test can SIGKILL the process at exactly that point.
//! Without the variable a failpoint costs one load of an initialised cell.

use std::io::Write;
use std::sync::OnceLock;

/// ENV is the variable that lists the active failpoints.
const ENV: &str = "ZONGZI_FAILPOINTS";

fn active() -> &'static [String] {
    static ACTIVE: OnceLock<Vec<String>> = OnceLock::new();
    ACTIVE.get_or_init(|| {
        std::env::var(ENV)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// hit stops the calling thread for good if `name` is an active failpoint.
pub(crate) fn hit(name: &str) {
    if !active().iter().any(|n| n == name) {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "failpoint {name}");
    let _ = err.flush();
    drop(err);
    loop {
        std::thread::park();
    }
}
