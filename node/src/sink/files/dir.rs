//! The files sink's directory: which files are closed (ready to upload or to expire), and the
//! recovery of what an earlier run left open.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The `.part` suffix of an open file.
pub(super) const PART: &str = ".part";

/// The closed files in `dir` (not `.part`), oldest first (names sort in the order the files
/// were opened), with their sizes.
pub(super) fn closed_files(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && name.ends_with(".log") {
            files.push((entry.path(), entry.metadata()?.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// Closes the `.part` files an earlier run left: a torn last line is cut (its message was
/// never acknowledged), then the file is synced and renamed. Returns how many.
pub(super) fn recover(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(final_name) = name.strip_suffix(PART) else {
            continue;
        };
        let data = std::fs::read(&path)?;
        let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut file = OpenOptions::new().write(true).open(&path)?;
        if keep < data.len() {
            file.set_len(keep as u64)?;
            file.seek(SeekFrom::End(0))?;
        }
        file.sync_all()?;
        drop(file);
        if keep == 0 {
            std::fs::remove_file(&path)?;
        } else {
            std::fs::rename(&path, dir.join(final_name))?;
            n += 1;
        }
    }
    File::open(dir)?.sync_all()?;
    Ok(n)
}
