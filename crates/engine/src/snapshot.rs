//! Snapshot files: where they live and how they are written safely.
//!
//! Every file operation goes through [`Disk`]: the real file system, or in the fault
//! simulation the simulated machine's disk, so that a simulated crash loses what was not
//! synced (see `sim::disk`).

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Result;

/// dir returns the directory holding a shard's snapshot files.
pub(crate) fn dir(root: &Path, shard: u64) -> PathBuf {
    root.join("snapshots").join(shard.to_string())
}

/// file returns the path of a shard's snapshot at `index`.
pub(crate) fn file(root: &Path, shard: u64, index: u64) -> PathBuf {
    dir(root, shard).join(format!("snap-{index:020}"))
}

/// write creates the snapshot file for `index` atomically: the data goes to a temporary
/// file, is synced, and only then renamed into place. It returns the file's size in bytes.
pub(crate) fn write(
    root: &Path,
    shard: u64,
    index: u64,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let d = dir(root, shard);
    fs::create_dir_all(&d)?;
    let final_path = file(root, shard, index);
    let tmp = d.join(format!("snap-{index:020}.tmp"));
    let disk = Disk::of(root);
    let f = disk.create(&tmp)?;
    let mut w = Counted {
        inner: BufWriter::with_capacity(1 << 20, f),
        bytes: 0,
    };
    fill(&mut w)?;
    let bytes = w.bytes;
    let f = w.inner.into_inner().map_err(|e| e.into_error())?;
    f.sync()?;
    disk.rename(&tmp, &final_path)?;
    disk.sync_dir(&d)?;
    Ok(bytes)
}

/// Counted is a writer that counts the bytes written through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A snapshot at most this large is taken every `snapshot_entries` entries, whatever the
/// log since holds.
const SMALL_SNAPSHOT: u64 = 1 << 20;
/// Bytes a log entry is counted as beyond its command (index, term, proposal context).
const ENTRY_BYTES: u64 = 32;
/// However large the last snapshot, one is due after this many times `snapshot_entries`
/// entries: the log store keeps an index record in memory for every entry since the last
/// snapshot, and a restart replays them all, so tiny commands over a large state must not grow
/// the log without bound.
const MAX_INTERVALS: u64 = 100;

/// Cadence decides when a shard's next snapshot is due. Every `snapshot_entries` entries, as
/// long as the snapshot is small; once it is not, also only when the log since the last one
/// has grown to that snapshot's size (Raft thesis §5.1.3). A state machine whose state grows
/// with every entry would otherwise be written out whole every `snapshot_entries` entries,
/// the cost of each snapshot growing with the state while the interval stays the same; this
/// way snapshotting costs at most about as many bytes written as the log it replaces, and a
/// restart replays at most about a snapshot's worth of log.
#[derive(Default)]
pub(crate) struct Cadence {
    /// Size of the last snapshot this replica wrote (0: none yet, or not known).
    last_bytes: u64,
    /// Bytes of the entries applied since then.
    log_bytes: u64,
}

impl Cadence {
    /// applied counts an applied entry of `len` command bytes.
    pub(crate) fn applied(&mut self, len: usize) {
        self.log_bytes += len as u64 + ENTRY_BYTES;
    }

    /// due tells whether a snapshot is due `entries` entries after the last one, with one
    /// every `every` entries (0: never).
    pub(crate) fn due(&self, entries: u64, every: u64) -> bool {
        every > 0
            && entries >= every
            && (self.last_bytes <= SMALL_SNAPSHOT
                || self.log_bytes >= self.last_bytes
                || entries >= every.saturating_mul(MAX_INTERVALS))
    }

    /// taken starts counting afresh after a snapshot of `bytes` (0: of unknown size).
    pub(crate) fn taken(&mut self, bytes: u64) {
        self.last_bytes = bytes;
        self.log_bytes = 0;
    }

    /// after is the cadence of a replica that starts from the snapshot of `bytes` (a restart,
    /// or one received from the leader): the next one waits for a log of that size too.
    pub(crate) fn after(bytes: u64) -> Cadence {
        Cadence {
            last_bytes: bytes,
            log_bytes: 0,
        }
    }
}

/// size is the size of a shard's snapshot file at `index` (0: none, or unreadable).
pub(crate) fn size(root: &Path, shard: u64, index: u64) -> u64 {
    if index == 0 {
        return 0;
    }
    Disk::of(root).len(&file(root, shard, index)).unwrap_or(0)
}

/// open opens the snapshot file of a shard at `index` for reading.
pub(crate) fn open(root: &Path, shard: u64, index: u64) -> std::io::Result<Box<dyn Read>> {
    Disk::of(root).open(&file(root, shard, index))
}

/// prune_below deletes a shard's snapshot files (and leftovers of interrupted saves) older
/// than `index`. It runs only after the snapshot at `index` is recorded in the log store, so
/// the snapshot a restart would load is never deleted.
pub(crate) fn prune_below(root: &Path, shard: u64, index: u64) -> Result<()> {
    let d = dir(root, shard);
    let Ok(rd) = fs::read_dir(&d) else {
        return Ok(());
    };
    let disk = Disk::of(root);
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("snap-") else {
            continue;
        };
        let num = rest.strip_suffix(".tmp").unwrap_or(rest);
        if num.parse::<u64>().is_ok_and(|i| i < index) {
            let _ = disk.remove(&entry.path());
        }
    }
    Ok(())
}

/// remove_all deletes every snapshot file of a shard.
pub(crate) fn remove_all(root: &Path, shard: u64) -> Result<()> {
    let d = dir(root, shard);
    let disk = Disk::of(root);
    if let Ok(rd) = fs::read_dir(&d) {
        for entry in rd.flatten() {
            let _ = disk.remove(&entry.path());
        }
    }
    match fs::remove_dir_all(d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// place moves a received snapshot file into place as the shard's snapshot at `index`, durably.
pub(crate) fn place(root: &Path, shard: u64, index: u64, received: &Path) -> Result<()> {
    let disk = Disk::of(root);
    disk.rename(received, &file(root, shard, index))?;
    disk.sync_dir(&dir(root, shard))?;
    Ok(())
}

/// Disk is the file system snapshot files of one data directory live on.
pub(crate) enum Disk {
    /// The real file system.
    Real,
    /// A simulated machine's disk, which a simulated crash rolls back to what was synced.
    #[cfg(test)]
    Sim(std::sync::Arc<crate::sim::disk::VolatileFs>),
}

/// SnapFile is a snapshot file open for writing.
pub(crate) enum SnapFile {
    Real(fs::File),
    #[cfg(test)]
    Sim(
        crate::sim::disk::VolatileFile,
        std::sync::Arc<crate::sim::disk::VolatileHandle>,
    ),
}

impl Write for SnapFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SnapFile::Real(f) => f.write(buf),
            #[cfg(test)]
            SnapFile::Sim(f, _) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SnapFile::Real(f) => f.flush(),
            #[cfg(test)]
            SnapFile::Sim(f, _) => f.flush(),
        }
    }
}

impl SnapFile {
    /// sync makes what was written durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        match self {
            SnapFile::Real(f) => f.sync_all(),
            #[cfg(test)]
            SnapFile::Sim(_, h) => raft_engine::env::Handle::sync(&**h),
        }
    }
}

#[cfg(test)]
type Disks = parking_lot::Mutex<Vec<(PathBuf, std::sync::Arc<crate::sim::disk::VolatileFs>)>>;

/// SIM_DISKS maps the data directories of simulated hosts to their disks.
#[cfg(test)]
static SIM_DISKS: Disks = parking_lot::Mutex::new(Vec::new());

impl Disk {
    /// of is the disk of the data directory `root`.
    pub(crate) fn of(_root: &Path) -> Disk {
        #[cfg(test)]
        if let Some((_, fs)) = SIM_DISKS.lock().iter().find(|(r, _)| _root.starts_with(r)) {
            return Disk::Sim(fs.clone());
        }
        Disk::Real
    }

    /// simulate puts the snapshot files under `root` on a simulated disk, until `forget`.
    #[cfg(test)]
    pub(crate) fn simulate(root: &Path, fs: std::sync::Arc<crate::sim::disk::VolatileFs>) {
        SIM_DISKS.lock().push((root.to_path_buf(), fs));
    }

    /// forget puts the snapshot files under `root` back on the real file system.
    #[cfg(test)]
    pub(crate) fn forget(root: &Path) {
        SIM_DISKS.lock().retain(|(r, _)| r != root);
    }

    /// create creates (or truncates) a file for writing.
    pub(crate) fn create(&self, path: &Path) -> std::io::Result<SnapFile> {
        match self {
            Disk::Real => Ok(SnapFile::Real(fs::File::create(path)?)),
            #[cfg(test)]
            Disk::Sim(fs) => {
                use raft_engine::env::{FileSystem, Handle};
                let h = std::sync::Arc::new(fs.create(path)?);
                h.truncate(0)?;
                Ok(SnapFile::Sim(fs.new_writer(h.clone())?, h))
            }
        }
    }

    /// open opens a file for reading.
    pub(crate) fn open(&self, path: &Path) -> std::io::Result<Box<dyn Read>> {
        match self {
            Disk::Real => Ok(Box::new(fs::File::open(path)?)),
            #[cfg(test)]
            Disk::Sim(fs) => {
                use raft_engine::env::{FileSystem, Permission};
                let h = fs.open(path, Permission::ReadOnly)?;
                Ok(Box::new(fs.new_reader(std::sync::Arc::new(h))?))
            }
        }
    }

    /// len is the size of a file.
    pub(crate) fn len(&self, path: &Path) -> std::io::Result<u64> {
        match self {
            Disk::Real => Ok(fs::metadata(path)?.len()),
            #[cfg(test)]
            Disk::Sim(fs) => {
                use raft_engine::env::{FileSystem, Handle, Permission};
                Ok(fs.open(path, Permission::ReadOnly)?.file_size()? as u64)
            }
        }
    }

    /// rename moves a file; on a simulated disk its unsynced writes move with it.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        match self {
            Disk::Real => fs::rename(from, to),
            #[cfg(test)]
            Disk::Sim(fs) => raft_engine::env::FileSystem::rename(&**fs, from, to),
        }
    }

    /// remove deletes a file.
    pub(crate) fn remove(&self, path: &Path) -> std::io::Result<()> {
        match self {
            Disk::Real => fs::remove_file(path),
            #[cfg(test)]
            Disk::Sim(fs) => raft_engine::env::FileSystem::delete(&**fs, path),
        }
    }

    /// sync_dir makes the entries of a directory durable (the simulated disk's directory
    /// operations are durable at once).
    pub(crate) fn sync_dir(&self, d: &Path) -> std::io::Result<()> {
        match self {
            Disk::Real => fs::File::open(d)?.sync_all(),
            #[cfg(test)]
            Disk::Sim(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod cadence_tests {
    use super::*;

    #[test]
    fn a_small_snapshot_is_due_every_interval() {
        let mut c = Cadence::after(1000);
        assert!(!c.due(9, 10));
        assert!(c.due(10, 10));
        c.taken(0);
        assert!(c.due(10, 10));
        assert!(!Cadence::default().due(10, 0), "0 entries: never");
    }

    #[test]
    fn a_large_snapshot_waits_for_a_log_of_its_size() {
        let mut c = Cadence::after(4 << 20);
        for _ in 0..1000 {
            c.applied(16);
        }
        assert!(!c.due(1000, 1000));
        for _ in 0..(4 << 20) / 48 {
            c.applied(16);
        }
        assert!(c.due(1000 + (4 << 20) / 48, 1000));
    }

    #[test]
    fn tiny_commands_over_a_large_state_still_bound_the_log() {
        // 1 GiB of state and 1-byte commands: its own size would take ~32 million entries.
        let mut c = Cadence::after(1 << 30);
        let every = 10;
        for _ in 0..every * MAX_INTERVALS {
            c.applied(1);
        }
        assert!(!c.due(every * MAX_INTERVALS - 1, every));
        assert!(c.due(every * MAX_INTERVALS, every));
    }
}
