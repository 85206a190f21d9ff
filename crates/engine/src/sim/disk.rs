//! A raft-engine [`FileSystem`] that forgets unsynced writes when the simulated machine crashes.
//!
//! Every file is a real file in a real directory, under its real name: raft-engine lists its
//! directory and keeps its `LOCK` file with `std::fs`, past the [`FileSystem`] trait. What sits
//! on disk, though, is only what has been synced. Writes made through a writer stay in an
//! in-memory overlay that belongs to the file (all handles of one path share it, the way
//! processes share the page cache), reads and sizes see the disk content with the overlay laid
//! over it, and [`Handle::sync`] writes the overlay to disk in order and drops it.
//!
//! [`VolatileFs::crash`] models power loss: every overlay is thrown away, and every handle,
//! reader and writer opened before the crash goes dead. A dead handle reads the disk as it is,
//! and its writes, truncations and syncs are silently dropped, so an engine that is dropped
//! after the crash (it truncates and syncs its active file on drop) cannot persist anything.
//! Files opened after the crash behave normally. [`VolatileFs::fail_next_sync`] makes the next
//! sync crash the machine and return an error; raft-engine panics on a failed sync.
//!
//! Simplifications and rules of use:
//!
//! - Directory operations (create, delete, rename) and truncation take effect on disk at once
//!   and are durable: a crash never loses or reorders them, where a real disk might. A renamed
//!   file keeps its unsynced writes, which a later sync writes under the new name.
//! - A delete, rename or reuse of a path that has not been opened or created since the last
//!   crash is taken to come from the crashed engine (a new engine opens a file before it renames
//!   or deletes it) and is ignored. On drop, raft-engine renames its recycled files; after a
//!   crash that rename would publish a decision that rested on writes the crash lost.
//! - A file created after a crash is live, whoever creates it, so the crashed engine must be
//!   dropped without being used again (it would rotate into a fresh, live file).
//! - A crash hits every file of the [`VolatileFs`]: use one per simulated machine.
//! - `allocate` does nothing, so files never carry preallocated zeros.
//! - A sync never reaches the real disk's `fsync`: the simulated crash does not stop the
//!   process, so whatever reached the OS survives it.
//! - Files are opened for reading and writing on disk whatever the permission asked for; a
//!   read-only handle refuses writes and truncation itself.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use raft_engine::env::{FileSystem, Handle, Permission, WriteExt};

/// The error of an injected sync failure; raft-engine panics with it.
pub(crate) const INJECTED: &str = "injected sync failure: the machine crashed";
/// A [`FileSystem`] whose unsynced writes are lost by [`crash`](Self::crash).
///
/// Open an engine on it with `Engine::open_with_file_system(cfg, Arc::new(VolatileFs::new()))`,
/// keeping a clone of the `Arc` to crash it and to reopen the engine after the crash.
#[derive(Default)]
pub struct VolatileFs {
    /// State shared with the files, which reach it through a weak reference.
    shared: Arc<Shared>,
}

/// The crash state and the table of open files.
#[derive(Default)]
struct Shared {
    /// Number of crashes so far; a file opened in an earlier epoch is dead.
    epoch: AtomicU64,
    /// Set by [`VolatileFs::fail_next_sync`]: the next sync crashes and fails.
    fail_next_sync: AtomicBool,
    /// The live file of each path opened or created since the last crash.
    files: Mutex<HashMap<PathBuf, Arc<Inode>>>,
    /// Set by [`VolatileFs::halt`]: the machine is down until [`VolatileFs::resume`].
    halted: AtomicBool,
}

impl Shared {
    /// Loses every overlay and kills every file opened so far.
    fn crash(&self) {
        let mut files = self.files.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        files.clear();
    }
}

/// One file on disk with the writes not yet synced to it.
struct Inode {
    /// The epoch this file was opened in; once a crash moves on, the file is dead.
    epoch: u64,
    /// The file system, to read the current epoch and to crash on an injected sync failure.
    shared: Weak<Shared>,
    /// The disk file and the overlay.
    cache: Mutex<Cache>,
}

/// The synced content of a file (on disk) and what has been written since.
struct Cache {
    /// The file on disk, which holds exactly the synced content.
    file: File,
    /// Length of the file on disk.
    synced_len: u64,
    /// Length seen by readers, overlay included.
    len: u64,
    /// Unsynced writes in the order they were made, none reaching past `len`.
    dirty: Vec<Extent>,
}

/// One unsynced write.
struct Extent {
    /// Where the write starts.
    offset: u64,
    /// What was written; consecutive writes are merged.
    data: Vec<u8>,
}

/// Reads `buf.len()` bytes of `file` at `offset`, stopping early at the end of the file.
fn read_disk(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => break,
            Ok(n) => {
                read += n;
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// The error returned for writes and truncations through a read-only handle.
fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only")
}

impl Inode {
    /// Whether no crash has happened since this file was opened.
    fn is_live(&self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|s| s.epoch.load(Ordering::SeqCst) == self.epoch)
    }

    /// Locks the cache, dropping the overlay of a dead file. Returns whether the file is live.
    fn lock(&self) -> (parking_lot::MutexGuard<'_, Cache>, bool) {
        let mut cache = self.cache.lock();
        let live = self.is_live();
        if !live && !cache.dirty.is_empty() {
            cache.dirty = Vec::new();
        }
        (cache, live)
    }

    /// Returns the size of the file, overlay included.
    fn len(&self) -> io::Result<u64> {
        let (cache, live) = self.lock();
        if live {
            Ok(cache.len)
        } else {
            Ok(cache.file.metadata()?.len())
        }
    }

    /// Reads from `offset` into `buf` and returns how many bytes were read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let (cache, live) = self.lock();
        if !live {
            return read_disk(&cache.file, offset, buf);
        }
        if offset >= cache.len {
            return Ok(0);
        }
        let end = cache.len.min(offset.saturating_add(buf.len() as u64));
        let out = &mut buf[..(end - offset) as usize];
        // Past the end of the disk file lie zeros and overlay writes.
        out.fill(0);
        read_disk(&cache.file, offset, out)?;
        for extent in &cache.dirty {
            let extent_end = extent.offset + extent.data.len() as u64;
            let (lo, hi) = (extent.offset.max(offset), extent_end.min(end));
            if lo < hi {
                let src = (lo - extent.offset) as usize..(hi - extent.offset) as usize;
                out[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&extent.data[src]);
            }
        }
        Ok(out.len())
    }

    /// Writes `data` at `offset` into the overlay; a dead file drops it.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let (mut cache, live) = self.lock();
        if !live || data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past u64"))?;
        match cache.dirty.last_mut() {
            Some(last) if last.offset + last.data.len() as u64 == offset => {
                last.data.extend_from_slice(data);
            }
            _ => cache.dirty.push(Extent {
                offset,
                data: data.to_vec(),
            }),
        }
        cache.len = cache.len.max(end);
        Ok(())
    }

    /// Sets the size of the file to `len`, on disk at once; a dead file ignores it.
    fn truncate(&self, len: u64) -> io::Result<()> {
        let (mut cache, live) = self.lock();
        if !live {
            return Ok(());
        }
        if cache.synced_len > len {
            cache.file.set_len(len)?;
            cache.synced_len = len;
        }
        cache.dirty.retain_mut(|extent| {
            if extent.offset >= len {
                return false;
            }
            let keep = (len - extent.offset).min(extent.data.len() as u64);
            extent.data.truncate(keep as usize);
            true
        });
        cache.len = len;
        Ok(())
    }

    /// Writes the overlay to disk, or crashes and fails if a sync failure was injected.
    fn sync(&self) -> io::Result<()> {
        let (mut cache, live) = self.lock();
        let Some(shared) = self.shared.upgrade().filter(|_| live) else {
            return Ok(());
        };
        if shared.fail_next_sync.swap(false, Ordering::SeqCst) {
            drop(cache);
            shared.crash();
            return Err(io::Error::other(INJECTED));
        }
        let cache = &mut *cache;
        let mut disk_len = cache.synced_len;
        for extent in &cache.dirty {
            cache.file.write_all_at(&extent.data, extent.offset)?;
            disk_len = disk_len.max(extent.offset + extent.data.len() as u64);
        }
        cache.dirty.clear();
        if disk_len != cache.len {
            cache.file.set_len(cache.len)?;
        }
        cache.synced_len = cache.len;
        Ok(())
    }
}

impl VolatileFs {
    /// Creates a file system with no crash so far.
    pub fn new() -> VolatileFs {
        VolatileFs::default()
    }

    /// Crashes the machine: unsynced writes are lost and all files opened so far go dead.
    pub fn crash(&self) {
        self.shared.fail_next_sync.store(false, Ordering::SeqCst);
        self.shared.crash();
    }

    /// Crashes the machine and keeps it down: until [`resume`](Self::resume), files cannot be
    /// opened or created, and deletes and renames do nothing. A host that crashes in the
    /// middle of a step (the simulation stops it at a failpoint) finishes the step on a disk
    /// that keeps none of it.
    pub fn halt(&self) {
        self.shared.halted.store(true, Ordering::SeqCst);
        self.crash();
    }

    /// Brings a halted machine back up.
    pub fn resume(&self) {
        self.shared.halted.store(false, Ordering::SeqCst);
    }

    /// Whether the machine is halted.
    fn is_halted(&self) -> bool {
        self.shared.halted.load(Ordering::SeqCst)
    }

    /// Makes the next sync of a live file crash the machine and return an error.
    pub fn fail_next_sync(&self) {
        self.shared.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Whether a sync failure is armed and has not fired yet.
    pub(crate) fn sync_will_fail(&self) -> bool {
        self.shared.fail_next_sync.load(Ordering::SeqCst)
    }

    /// Returns the live file at `path`, opening it on disk (creating it if `create`) if need be.
    fn inode(&self, path: &Path, create: bool) -> io::Result<Arc<Inode>> {
        if self.is_halted() {
            return Err(io::Error::other("the machine is down"));
        }
        let mut files = self.shared.files.lock();
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        if let Some(inode) = files.get(path).filter(|inode| inode.epoch == epoch) {
            return Ok(inode.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let inode = Arc::new(Inode {
            epoch,
            shared: Arc::downgrade(&self.shared),
            cache: Mutex::new(Cache {
                file,
                synced_len: len,
                len,
                dirty: Vec::new(),
            }),
        });
        files.insert(path.to_path_buf(), inode.clone());
        Ok(inode)
    }

    /// Whether an operation on `path` comes from an engine that crashed: after a crash, only
    /// paths opened or created since then may be renamed or deleted.
    fn is_stale(&self, files: &HashMap<PathBuf, Arc<Inode>>, path: &Path) -> bool {
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        epoch > 0 && files.get(path).is_none_or(|inode| inode.epoch != epoch)
    }
}

/// A handle on a file of a [`VolatileFs`].
pub struct VolatileHandle {
    /// The file.
    inode: Arc<Inode>,
    /// Whether the handle was opened for writing.
    writable: bool,
}

/// A reader or writer on a file of a [`VolatileFs`], with its own position.
pub struct VolatileFile {
    /// The file.
    inode: Arc<Inode>,
    /// Whether the handle it came from was opened for writing.
    writable: bool,
    /// Position of the next read or write.
    offset: u64,
}

impl VolatileFile {
    /// Opens a reader or writer at the start of the file of `handle`.
    fn new(handle: &VolatileHandle) -> VolatileFile {
        VolatileFile {
            inode: handle.inode.clone(),
            writable: handle.writable,
            offset: 0,
        }
    }
}

impl FileSystem for VolatileFs {
    type Handle = VolatileHandle;
    type Reader = VolatileFile;
    type Writer = VolatileFile;

    fn create<P: AsRef<Path>>(&self, path: P) -> io::Result<VolatileHandle> {
        Ok(VolatileHandle {
            inode: self.inode(path.as_ref(), true)?,
            writable: true,
        })
    }

    fn open<P: AsRef<Path>>(&self, path: P, perm: Permission) -> io::Result<VolatileHandle> {
        Ok(VolatileHandle {
            inode: self.inode(path.as_ref(), false)?,
            writable: perm == Permission::ReadWrite,
        })
    }

    fn delete<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let path = path.as_ref();
        let mut files = self.shared.files.lock();
        if self.is_halted() || self.is_stale(&files, path) {
            return Ok(());
        }
        std::fs::remove_file(path)?;
        files.remove(path);
        Ok(())
    }

    fn rename<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> io::Result<()> {
        let (src, dst) = (src_path.as_ref(), dst_path.as_ref());
        let mut files = self.shared.files.lock();
        if self.is_halted() || self.is_stale(&files, src) {
            return Ok(());
        }
        std::fs::rename(src, dst)?;
        // The overlay moves with the file; whatever was at `dst` is gone.
        match files.remove(src) {
            Some(inode) => files.insert(dst.to_path_buf(), inode),
            None => files.remove(dst),
        };
        Ok(())
    }

    fn new_reader(&self, handle: Arc<VolatileHandle>) -> io::Result<VolatileFile> {
        Ok(VolatileFile::new(&handle))
    }

    fn new_writer(&self, handle: Arc<VolatileHandle>) -> io::Result<VolatileFile> {
        Ok(VolatileFile::new(&handle))
    }
}

impl Handle for VolatileHandle {
    fn truncate(&self, offset: usize) -> io::Result<()> {
        if !self.writable {
            return Err(read_only());
        }
        self.inode.truncate(offset as u64)
    }

    fn file_size(&self) -> io::Result<usize> {
        Ok(self.inode.len()? as usize)
    }

    fn sync(&self) -> io::Result<()> {
        self.inode.sync()
    }
}

impl Read for VolatileFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inode.read_at(self.offset, buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Write for VolatileFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.writable {
            return Err(read_only());
        }
        self.inode.write_at(self.offset, buf)?;
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for VolatileFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.offset.checked_add_signed(delta),
            SeekFrom::End(delta) => self.inode.len()?.checked_add_signed(delta),
        };
        self.offset = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.offset)
    }
}

impl WriteExt for VolatileFile {
    fn truncate(&mut self, offset: usize) -> io::Result<()> {
        if !self.writable {
            return Err(read_only());
        }
        self.inode.truncate(offset as u64)?;
        self.offset = offset as u64;
        Ok(())
    }

    fn allocate(&mut self, _offset: usize, _size: usize) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
