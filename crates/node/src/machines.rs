//! The engine-side stand-in for a state machine written in JavaScript.
//!
//! The engine's apply thread calls [`JsStateMachine`]; each call is handed to JavaScript
//! through one thread-safe function and the apply thread waits until JavaScript answers with
//! `NativeHost.complete`. Queries never come here: JavaScript runs them on its own object.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use napi::threadsafe_function::{ErrorStrategy, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use parking_lot::Mutex;
use zongzi_engine::{ApplyResult, BatchItem, BatchUpdater, SmEntry, SmError, StateMachine};

/// Call is one request to the JavaScript side. Each names the replica it is for by shard
/// and incarnation, so that JavaScript never hands one start's work to another's state
/// machine.
pub(crate) enum Call {
    /// Entries of many replicas, in the order they must be applied.
    Update { items: Vec<UpdateItem> },
    Save {
        shard: u64,
        incarnation: u64,
        path: String,
    },
    Recover {
        shard: u64,
        incarnation: u64,
        path: String,
        /// The last entry the snapshot covers.
        index: u64,
    },
}

/// UpdateItem is one replica's entries in an update.
pub(crate) struct UpdateItem {
    pub(crate) shard: u64,
    pub(crate) incarnation: u64,
    pub(crate) entries: Vec<SmEntry>,
}

/// Reply is JavaScript's answer to a call.
pub(crate) enum Reply {
    /// One outcome per item of an update, in order.
    Outcomes(Vec<Result<Vec<ApplyResult>, String>>),
    Done,
    Failed(String),
}

/// Bridge carries calls to JavaScript and their replies back.
pub(crate) struct Bridge {
    tsfn: ThreadsafeFunction<(u64, Call), ErrorStrategy::Fatal>,
    pending: Mutex<HashMap<u64, SyncSender<Reply>>>,
    next: AtomicU64,
    closed: AtomicBool,
    tmp_dir: PathBuf,
}

impl Bridge {
    pub(crate) fn new(
        tsfn: ThreadsafeFunction<(u64, Call), ErrorStrategy::Fatal>,
        tmp_dir: PathBuf,
    ) -> Self {
        Bridge {
            tsfn,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            tmp_dir,
        }
    }

    /// call sends a request to JavaScript and waits for the reply. It must never run on the
    /// JavaScript thread itself.
    fn call(&self, call: Call) -> Result<Reply, SmError> {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(1);
        {
            // Checked and registered under the lock that close() takes, so a call is either
            // refused or failed by close(), never left waiting.
            let mut pending = self.pending.lock();
            if self.closed.load(Ordering::SeqCst) {
                return Err(SmError("host closed".into()));
            }
            pending.insert(token, tx);
        }
        let status = self
            .tsfn
            .call((token, call), ThreadsafeFunctionCallMode::NonBlocking);
        if status != napi::Status::Ok {
            self.pending.lock().remove(&token);
            return Err(SmError(format!("cannot reach JavaScript: {status}")));
        }
        match rx.recv() {
            Ok(Reply::Failed(msg)) => Err(SmError(msg)),
            Ok(r) => Ok(r),
            Err(_) => Err(SmError("host closed".into())),
        }
    }

    /// complete delivers JavaScript's reply to the waiting call.
    pub(crate) fn complete(&self, token: u64, reply: Reply) -> bool {
        match self.pending.lock().remove(&token) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// close fails every waiting call and refuses new ones, so apply threads never wait on
    /// a JavaScript side that has gone away.
    pub(crate) fn close(&self) {
        let mut pending = self.pending.lock();
        self.closed.store(true, Ordering::SeqCst);
        pending.clear();
    }

    fn tmp_path(&self, shard: u64, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir.join(format!("{what}-{shard}-{n}.tmp"))
    }
}

impl BatchUpdater for Bridge {
    fn update_batch(&self, batch: &[BatchItem<'_>]) -> Vec<Result<Vec<ApplyResult>, SmError>> {
        let items = batch
            .iter()
            .map(|i| UpdateItem {
                shard: i.shard,
                incarnation: i.incarnation,
                entries: i.entries.to_vec(),
            })
            .collect();
        match self.call(Call::Update { items }) {
            Ok(Reply::Outcomes(o)) if o.len() == batch.len() => {
                o.into_iter().map(|r| r.map_err(SmError)).collect()
            }
            Ok(_) => fail_all(
                batch.len(),
                "update answered with the wrong number of outcomes",
            ),
            Err(e) => fail_all(batch.len(), &e.0),
        }
    }
}

fn fail_all(n: usize, msg: &str) -> Vec<Result<Vec<ApplyResult>, SmError>> {
    (0..n).map(|_| Err(SmError(msg.to_string()))).collect()
}

/// JsStateMachine forwards one replica's state machine calls to JavaScript.
pub(crate) struct JsStateMachine {
    pub(crate) shard: u64,
    /// The start of the replica this state machine serves.
    pub(crate) incarnation: u64,
    /// The index JavaScript's `open()` reported before the replica was started.
    pub(crate) applied: u64,
    pub(crate) bridge: Arc<Bridge>,
}

fn io(e: std::io::Error) -> SmError {
    SmError(e.to_string())
}

impl StateMachine for JsStateMachine {
    fn open(&mut self) -> Result<u64, SmError> {
        Ok(self.applied)
    }

    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let mut out = self.bridge.update_batch(&[BatchItem {
            shard: self.shard,
            incarnation: self.incarnation,
            entries,
        }]);
        out.pop()
            .unwrap_or_else(|| Err(SmError("no outcome for the update".into())))
    }

    fn query(&self, _query: &[u8]) -> Result<Vec<u8>, SmError> {
        Err(SmError(
            "queries of JavaScript state machines run in JavaScript".into(),
        ))
    }

    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        // JavaScript writes the snapshot to a file of its own; it is then copied into the
        // engine's snapshot file, which the engine syncs and renames into place.
        let path = self.bridge.tmp_path(self.shard, "save");
        let res = self.bridge.call(Call::Save {
            shard: self.shard,
            incarnation: self.incarnation,
            path: path.to_string_lossy().into_owned(),
        });
        let copied = res.and_then(|_| {
            let mut f = std::fs::File::open(&path).map_err(io)?;
            std::io::copy(&mut f, w).map_err(io)?;
            Ok(())
        });
        let _ = std::fs::remove_file(&path);
        copied
    }

    fn recover_from_snapshot(&mut self, index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let path = self.bridge.tmp_path(self.shard, "recover");
        let res = (|| {
            let mut f = std::fs::File::create(&path).map_err(io)?;
            std::io::copy(r, &mut f).map_err(io)?;
            f.sync_all().map_err(io)?;
            self.bridge.call(Call::Recover {
                shard: self.shard,
                incarnation: self.incarnation,
                path: path.to_string_lossy().into_owned(),
                index,
            })
        })();
        let _ = std::fs::remove_file(&path);
        res.map(|_| ())
    }
}
