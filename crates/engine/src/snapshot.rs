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

/// prune deletes all but the newest `keep` snapshot files of a shard and any leftovers of
/// interrupted writes. Keeping more than one lets a transfer of the previous one finish.
pub(crate) fn prune(root: &Path, shard: u64, keep: usize) -> Result<()> {
    let d = dir(root, shard);
    let Ok(rd) = fs::read_dir(&d) else {
        return Ok(());
    };
    let mut snaps = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        } else if name.starts_with("snap-") {
            snaps.push(name);
        }
    }
    snaps.sort();
    let n = snaps.len().saturating_sub(keep);
    for name in &snaps[..n] {
        let _ = fs::remove_file(d.join(name));
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
