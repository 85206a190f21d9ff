//! Logs: raft-rs's slog records and the engine's own events, handed to the host's owner in
//! batches.
//!
//! A record below the minimum level is never built: raft-rs's drain checks the level before it
//! formats anything, and so does [`Logs::emit`]. Records go into a bounded queue without
//! waiting; when it is full they are dropped and counted. A task drains the queue every
//! 100 ms, or sooner once it holds a batch's worth, and calls the sink with what it took.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::{Event, EventListener};

/// Records a batch holds at most; a full batch is handed over before the next drain is due.
const BATCH: usize = 512;
/// Records the queue holds; more are dropped and counted.
const CAPACITY: usize = 8192;
/// How often the queue is drained.
const EVERY: Duration = Duration::from_millis(100);

/// Level is a record's severity, most severe first. slog's `Critical` is `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong but the host carries on.
    Warn,
    /// A change worth knowing (a leader elected, a replica started).
    Info,
    /// Detail for debugging.
    Debug,
    /// Finer detail.
    Trace,
}

impl Level {
    /// name is the level's lower-case name, as pino names it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    fn of_slog(l: slog::Level) -> Level {
        match l {
            slog::Level::Critical | slog::Level::Error => Level::Error,
            slog::Level::Warning => Level::Warn,
            slog::Level::Info => Level::Info,
            slog::Level::Debug => Level::Debug,
            slog::Level::Trace => Level::Trace,
        }
    }
}

/// Value is a field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

/// LogRecord is one record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// The message.
    pub msg: String,
    /// Where it comes from: `raft` (raft-rs) or `engine`.
    pub source: &'static str,
    /// The shard it is about, 0 for none.
    pub shard: u64,
    /// The local replica it is about, 0 for none.
    pub replica: u64,
    /// Other fields.
    pub fields: Vec<(String, Value)>,
}

/// LogSink receives batches of records, on an engine thread.
pub type LogSink = Arc<dyn Fn(Vec<LogRecord>) + Send + Sync>;

/// Logs is a host's log queue.
pub(crate) struct Logs {
    min: Level,
    tx: Sender<LogRecord>,
    rx: Receiver<LogRecord>,
    sink: LogSink,
    dropped: AtomicU64,
    /// Wakes the drain task once a batch's worth is queued.
    full: tokio::sync::Notify,
}

impl Logs {
    pub(crate) fn new(sink: LogSink, min: Level) -> Arc<Logs> {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        Arc::new(Logs {
            min,
            tx,
            rx,
            sink,
            dropped: AtomicU64::new(0),
            full: tokio::sync::Notify::new(),
        })
    }

    /// enabled tells whether records of `level` are wanted.
    pub(crate) fn enabled(&self, level: Level) -> bool {
        level <= self.min
    }

    /// push queues a record, or drops and counts it when the queue is full.
    pub(crate) fn push(&self, r: LogRecord) {
        match self.tx.try_send(r) {
            Ok(()) => {
                if self.tx.len() == BATCH {
                    self.full.notify_one();
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// emit queues an engine record, built only if its level is wanted.
    pub(crate) fn emit(
        &self,
        level: Level,
        shard: u64,
        replica: u64,
        msg: impl FnOnce() -> (String, Vec<(String, Value)>),
    ) {
        if !self.enabled(level) {
            return;
        }
        let (msg, fields) = msg();
        self.push(LogRecord {
            level,
            msg,
            source: "engine",
            shard,
            replica,
            fields,
        });
    }

    /// dropped is how many records were dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// flush hands everything queued to the sink, a batch at a time.
    pub(crate) fn flush(&self) {
        loop {
            let batch: Vec<LogRecord> = self.rx.try_iter().take(BATCH).collect();
            if batch.is_empty() {
                return;
            }
            (self.sink)(batch);
        }
    }

    /// run drains the queue until the runtime shuts down.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = self.full.notified() => {}
            }
            self.flush();
        }
    }

    /// raft is a slog logger for raft-rs's records of one replica.
    pub(crate) fn raft(self: &Arc<Self>, shard: u64, replica: u64) -> slog::Logger {
        let drain = RaftDrain {
            logs: std::panic::AssertUnwindSafe(self.clone()),
            shard,
            replica,
        };
        slog::Logger::root(drain, slog::o!())
    }
}

/// emit queues an engine record on `logs`, if there are logs and the level is wanted.
pub(crate) fn emit(
    logs: &Option<Arc<Logs>>,
    level: Level,
    shard: u64,
    replica: u64,
    msg: impl FnOnce() -> (String, Vec<(String, Value)>),
) {
    if let Some(l) = logs {
        l.emit(level, shard, replica, msg);
    }
}

/// logged_events is `listener` with every event also logged (when there are logs).
pub(crate) fn logged_events(
    listener: Option<EventListener>,
    logs: Option<Arc<Logs>>,
) -> Option<EventListener> {
    let Some(logs) = logs else {
        return listener;
    };
    Some(Arc::new(move |e: Event| {
        log_event(&logs, &e);
        if let Some(l) = &listener {
            l(e);
        }
    }))
}

/// log_event logs an event.
fn log_event(logs: &Logs, e: &Event) {
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    match e {
        Event::LeaderChanged {
            shard_id,
            replica_id,
            leader_id,
            term,
        } => logs.emit(Level::Info, *shard_id, *replica_id, || {
            let fields = vec![num("leader", *leader_id), num("term", *term)];
            ("leader changed".into(), fields)
        }),
        Event::MembershipChanged {
            shard_id,
            replica_id,
            membership,
        } => logs.emit(Level::Info, *shard_id, *replica_id, || {
            let fields = vec![
                field("voters", ids(&membership.voters)),
                field("nonVoters", ids(&membership.non_voters)),
            ];
            ("membership changed".into(), fields)
        }),
        Event::ReplicaFailed {
            shard_id,
            replica_id,
            incarnation,
            error,
        } => logs.emit(Level::Error, *shard_id, *replica_id, || {
            let fields = vec![field("error", error), num("incarnation", *incarnation)];
            ("replica failed".into(), fields)
        }),
        Event::ReplicaRemoved {
            shard_id,
            replica_id,
            incarnation,
        } => logs.emit(Level::Info, *shard_id, *replica_id, || {
            let fields = vec![num("incarnation", *incarnation)];
            ("replica removed from its shard".into(), fields)
        }),
        Event::HostFailed { error } => logs.emit(Level::Error, 0, 0, || {
            ("host failed".into(), vec![field("error", error)])
        }),
    }
}

/// field is a string field.
pub(crate) fn field(k: &str, v: impl std::fmt::Display) -> (String, Value) {
    (k.to_string(), Value::Str(v.to_string()))
}

/// num is a number field.
pub(crate) fn num(k: &str, v: u64) -> (String, Value) {
    (k.to_string(), Value::Num(v as f64))
}

/// RaftDrain takes raft-rs's records of one replica.
struct RaftDrain {
    /// A sink that panics fails the host's thread like any other panic in it.
    logs: std::panic::AssertUnwindSafe<Arc<Logs>>,
    shard: u64,
    replica: u64,
}

impl slog::Drain for RaftDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let level = Level::of_slog(record.level());
        if !self.logs.enabled(level) {
            return Ok(());
        }
        let mut fields = Fields(Vec::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut fields);
        let _ = slog::KV::serialize(values, record, &mut fields);
        let mut msg = String::new();
        let _ = write!(msg, "{}", record.msg());
        self.logs.push(LogRecord {
            level,
            msg,
            source: "raft",
            shard: self.shard,
            replica: self.replica,
            fields: fields.0,
        });
        Ok(())
    }

    fn is_enabled(&self, level: slog::Level) -> bool {
        self.logs.enabled(Level::of_slog(level))
    }
}

/// Fields collects a record's key-value pairs.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn put(&mut self, key: slog::Key, v: Value) -> slog::Result {
        self.0.push((key.to_string(), v));
        Ok(())
    }
}

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.put(key, Value::Str(val.to_string()))
    }
    fn emit_str(&mut self, key: slog::Key, val: &str) -> slog::Result {
        self.put(key, Value::Str(val.to_string()))
    }
    fn emit_bool(&mut self, key: slog::Key, val: bool) -> slog::Result {
        self.put(key, Value::Bool(val))
    }
    fn emit_u64(&mut self, key: slog::Key, val: u64) -> slog::Result {
        self.put(key, Value::Num(val as f64))
    }
    fn emit_i64(&mut self, key: slog::Key, val: i64) -> slog::Result {
        self.put(key, Value::Num(val as f64))
    }
    fn emit_usize(&mut self, key: slog::Key, val: usize) -> slog::Result {
        self.put(key, Value::Num(val as f64))
    }
    fn emit_u32(&mut self, key: slog::Key, val: u32) -> slog::Result {
        self.put(key, Value::Num(val as f64))
    }
    fn emit_f64(&mut self, key: slog::Key, val: f64) -> slog::Result {
        self.put(key, Value::Num(val))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_below_the_minimum_are_never_queued_and_a_full_queue_drops_and_counts() {
        let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let g = got.clone();
        let logs = Logs::new(Arc::new(move |b| g.lock().extend(b)), Level::Info);
        let log = logs.raft(3, 7);
        slog::debug!(log, "not wanted"; "n" => 1);
        slog::info!(log, "became leader at term {term}", term = 2; "raft_id" => 7u64);
        logs.emit(Level::Trace, 3, 7, || panic!("built below the minimum"));
        logs.flush();
        let got = got.lock().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg, "became leader at term 2");
        assert_eq!(
            (got[0].shard, got[0].replica, got[0].level),
            (3, 7, Level::Info)
        );
        assert!(got[0].fields.contains(&("raft_id".into(), Value::Num(7.0))));
        for _ in 0..CAPACITY + 5 {
            logs.emit(Level::Error, 0, 0, || ("x".into(), Vec::new()));
        }
        assert_eq!(logs.dropped(), 5);
    }
}
