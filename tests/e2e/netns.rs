//! A second host for tests: a network namespace joined to this one by a veth pair, whose link
//! a test can cut (no reset, no FIN: packets just stop, as when a cable or a route goes) and
//! restore. Needs root (CI runs as root); [`Netns::create`] says why it cannot otherwise.

use std::process::Command;

/// A network namespace with one veth link to the host.
pub struct Netns {
    name: String,
    host_if: String,
    /// The host's address on the link (servers the namespace reaches listen here).
    pub host_ip: String,
    /// The namespace's address on the link.
    pub ns_ip: String,
}

/// Runs `ip ARGS`; the error names the command and what it said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates namespace `slimnode-<pid>-<tag>` with a veth pair on a /30 of its own (the
    /// addresses exist only between this host and that namespace).
    pub fn create(tag: u8) -> Result<Netns, String> {
        let pid = std::process::id();
        let name = format!("slimnode-{pid}-{tag}");
        // Interface names are at most 15 bytes.
        let host_if = format!("sn{}h{tag}", pid % 100_000);
        let ns_if = format!("sn{}n{tag}", pid % 100_000);
        let subnet = format!("10.231.{}", (pid % 60) * 4 + u32::from(tag % 4));
        let ns = Netns {
            host_ip: format!("{subnet}.1"),
            ns_ip: format!("{subnet}.2"),
            name,
            host_if,
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, Drop removes what was made.
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        in_ns(&["addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns_if])?;
        in_ns(&["link", "set", &ns_if, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// Cuts the link: nothing passes, and neither side is told.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).expect("cutting the link");
    }

    /// Restores the link.
    pub fn restore(&self) {
        ip(&["link", "set", &self.host_if, "up"]).expect("restoring the link");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
