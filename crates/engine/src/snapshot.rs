//! Snapshot files: where they live and how they are written safely.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
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
/// file, is synced, and only then renamed into place.
pub(crate) fn write(
    root: &Path,
    shard: u64,
    index: u64,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<PathBuf> {
    let d = dir(root, shard);
    fs::create_dir_all(&d)?;
    let final_path = file(root, shard, index);
    let tmp = d.join(format!("snap-{index:020}.tmp"));
    let f = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    fill(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    fs::rename(&tmp, &final_path)?;
    File::open(&d)?.sync_all()?;
    Ok(final_path)
}

/// prune_below deletes a shard's snapshot files (and leftovers of interrupted saves) older
/// than `index`. It runs only after the snapshot at `index` is recorded in the log store, so
/// the snapshot a restart would load is never deleted.
pub(crate) fn prune_below(root: &Path, shard: u64, index: u64) -> Result<()> {
    let d = dir(root, shard);
    let Ok(rd) = fs::read_dir(&d) else {
        return Ok(());
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("snap-") else {
            continue;
        };
        let num = rest.strip_suffix(".tmp").unwrap_or(rest);
        if num.parse::<u64>().is_ok_and(|i| i < index) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// remove_all deletes every snapshot file of a shard.
pub(crate) fn remove_all(root: &Path, shard: u64) -> Result<()> {
    match fs::remove_dir_all(dir(root, shard)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// place moves a received snapshot file into place as the shard's snapshot at `index`, durably.
pub(crate) fn place(root: &Path, shard: u64, index: u64, received: &Path) -> Result<()> {
    let d = dir(root, shard);
    fs::rename(received, file(root, shard, index))?;
    File::open(&d)?.sync_all()?;
    Ok(())
}
