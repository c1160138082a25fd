//! A small real filesystem for tests of a full disk: a tmpfs of a given size, mounted in a
//! temporary directory (root only) and unmounted when dropped.

use std::path::Path;
use std::process::Command;

/// A mounted tmpfs.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `kib` KiB; `None` (after saying the test is skipped) where the test cannot
    /// mount one because it does not run as root. As root, a mount that fails is a failure.
    pub fn mount(kib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(SmallDisk { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(!is_root(), "cannot mount tmpfs as root: {why}");
        eprintln!("skipped: cannot mount tmpfs: {why}");
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives it `kib` KiB in all.
    pub fn resize(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount to {kib} KiB failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
