//! The deployment recipes in examples/deploy/ pass the real linters: hadolint (Dockerfile),
//! `systemd-analyze verify` (systemd units) and kubernetes-validate (Kubernetes manifests, against
//! the schemas it ships: no cluster, no network). hadolint and kubernetes-validate come from
//! .ci/venv and systemd-analyze from the systemd package, all installed by .ci/deps.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{repo_root as root, venv_tool};

/// The Kubernetes version the manifests are validated against (the oldest we expect to run on).
const KUBERNETES_VERSION: &str = "1.31.0";

/// Where the units expect the binary; the check points them at the one this test built.
const INSTALLED_BIN: &str = "/usr/local/bin/slim-node";

fn deploy(path: &str) -> PathBuf {
    root().join("examples/deploy").join(path)
}

/// Runs `cmd` in the repository root; a tool that is not there fails the test.
fn run(mut cmd: Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): run .ci/deps.sh"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no *{suffix} in {}", dir.display());
    found
}

#[test]
fn dockerfile_passes_hadolint() {
    let mut cmd = Command::new(venv_tool("hadolint"));
    cmd.args(["--no-color"]).arg(deploy("Dockerfile"));
    let out = run(cmd);
    assert!(
        out.status.success(),
        "hadolint: {}\n{}",
        out.status,
        text(&out)
    );
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    // verify checks that ExecStart's binary exists and is executable: each unit is copied with
    // its ExecStart pointed at the binary under test, everything else unchanged.
    let bin = env!("CARGO_BIN_EXE_slim-node");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut units = Vec::new();
    for unit in files(&deploy("systemd"), ".service") {
        let original = std::fs::read_to_string(&unit).unwrap();
        let prefix = format!("ExecStart={INSTALLED_BIN} ");
        assert!(
            original.lines().any(|l| l.starts_with(&prefix)),
            "{}: no `{prefix}…` line",
            unit.display()
        );
        let copy = dir.path().join(unit.file_name().unwrap());
        std::fs::write(
            &copy,
            original.replace(&prefix, &format!("ExecStart={bin} ")),
        )
        .unwrap();
        units.push(copy);
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"]).args(&units);
    let out = run(cmd);
    // verify exits 0 on an unknown directive or a bad value (it logs it and ignores the line):
    // any diagnostic fails the check.
    let said = text(&out);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
}

#[test]
fn kubernetes_manifests_pass_schema_validation() {
    // kustomization.yaml is kustomize's, not a Kubernetes resource: no schema.
    let manifests: Vec<PathBuf> = files(&deploy("kubernetes"), ".yaml")
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    let mut cmd = Command::new(venv_tool("kubernetes-validate"));
    cmd.args(["--strict", "-k", KUBERNETES_VERSION])
        .args(&manifests);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "kubernetes-validate: {}\n{}",
        out.status,
        text(&out)
    );
}
