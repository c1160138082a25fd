//! Peers of other software for the end-to-end tests: Python programs written against the SLIM
//! bindings (`tests/e2e/*.py`, run with .ci/venv's Python), printing one JSON object per line.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// A Python peer (`tests/e2e/SCRIPT`), its JSON lines on stdout in `dir/LABEL.out`.
pub struct Peer {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Peer {
    /// Starts `tests/e2e/SCRIPT ARGS`.
    pub fn spawn(mesh: &Mesh, label: &str, script: &str, args: &[String]) -> Peer {
        let out = mesh.path(&format!("{label}.out"));
        let err = mesh.path(&format!("{label}.err"));
        let child = Command::new(venv_tool("python"))
            .arg(repo_root().join("tests/e2e").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .expect("cannot start python");
        Peer { child, out, err }
    }

    /// Its standard input (once).
    pub fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin taken once")
    }

    /// The events (`{"event": NAME}` lines) named `name` it printed so far.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["event"] == name)
            .collect()
    }

    /// The JSON lines it printed so far.
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// What it printed, for a failure message.
    pub fn log(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits (bounded) until a line satisfies `found`.
    pub async fn wait_line(&self, what: &str, found: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + FORM_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(line) = self.lines().into_iter().find(|l| found(l)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}; {}", self.log());
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
