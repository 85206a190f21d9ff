//! Fault: the host's fail-stop switch.
//!
//! The host is the unit of failure. A storage error or a panic in any engine thread (a step
//! worker, an apply thread, a transport task) trips the switch once: the cause is kept, a
//! [`crate::Event::HostFailed`] carries it to the application, every step worker stops (so
//! the host no longer votes or acknowledges), pending calls reject with
//! [`crate::Error::HostFailed`], and so does every later call. The process itself lives on.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::error::Error;
use crate::event::{Event, EventListener};
use crate::router::Router;

/// Fault records whether, and why, the host has failed.
pub(crate) struct Fault {
    failed: AtomicBool,
    cause: Mutex<Option<String>>,
    events: Option<EventListener>,
    router: Arc<Router>,
}

impl Fault {
    pub(crate) fn new(router: Arc<Router>, events: Option<EventListener>) -> Self {
        Fault {
            failed: AtomicBool::new(false),
            cause: Mutex::new(None),
            events,
            router,
        }
    }

    /// trip stops the host for `cause`; only the first cause is kept and reported.
    pub(crate) fn trip(&self, cause: String) {
        {
            let mut c = self.cause.lock();
            if c.is_some() {
                return;
            }
            *c = Some(cause.clone());
            self.failed.store(true, Ordering::SeqCst);
        }
        self.router.shutdown();
        if let Some(l) = &self.events {
            // The listener is application code: its own panic must not undo the stop.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                l(Event::HostFailed { error: cause })
            }));
        }
    }

    /// is_failed tells whether the switch has tripped.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// error is the error of calls to a failed host, if it has failed.
    pub(crate) fn error(&self) -> Option<Error> {
        self.cause.lock().clone().map(Error::HostFailed)
    }

    /// spawn runs a transport task; a panic in it trips the switch.
    pub(crate) fn spawn<F>(self: &Arc<Self>, handle: &Handle, what: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = handle.spawn(task);
        let fault = self.clone();
        handle.spawn(async move {
            if let Err(e) = task.await {
                if e.is_panic() {
                    let msg = panic_message(&*e.into_panic());
                    fault.trip(format!("{what} panicked: {msg}"));
                }
            }
        });
    }
}

/// panic_message extracts the text of a panic payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
