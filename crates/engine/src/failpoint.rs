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

/// Hook is what a test runs at a failpoint, given its name.
#[cfg(test)]
pub(crate) type Hook = Box<dyn FnMut(&str)>;

#[cfg(test)]
thread_local! {
    /// HOOK, in tests, is called at every failpoint the thread reaches: the fault simulation
    /// crashes a simulated host there.
    static HOOK: std::cell::RefCell<Option<Hook>> = const { std::cell::RefCell::new(None) };
}

/// set_hook makes `hook` run at every failpoint the calling thread reaches (tests only).
#[cfg(test)]
pub(crate) fn set_hook(hook: Option<Hook>) {
    HOOK.with(|h| *h.borrow_mut() = hook);
}

/// hit stops the calling thread for good if `name` is an active failpoint.
pub(crate) fn hit(name: &str) {
    // The hook is out of its cell while it runs, so a failpoint it reaches itself is passed.
    #[cfg(test)]
    if let Some(mut hook) = HOOK.with(|h| h.borrow_mut().take()) {
        hook(name);
        HOOK.with(|h| {
            let mut h = h.borrow_mut();
            if h.is_none() {
                *h = Some(hook);
            }
        });
    }
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
