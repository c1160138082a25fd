//! A second host for tests: a network namespace joined to this one by a veth pair, whose link
//! a test can cut (no reset, no FIN: packets just stop, as when a cable or a route goes) and
//! restore. Needs root (CI runs as root); [`Netns::create`] says why it cannot otherwise.

use std::process::Command;

/// What [`Netns::create`] or [`Lan::create`] made; `None` (the test is skipped, saying why)
/// when not running as root. As root, failing to make it fails the test.
pub fn or_skip<T>(made: Result<T, String>) -> Option<T> {
    match made {
        Ok(made) => Some(made),
        Err(why) if !crate::harness::running_as_root() => {
            eprintln!("skipped: this test needs root to create network namespaces: {why}");
            None
        }
        Err(why) => panic!("cannot create network namespaces as root: {why}"),
    }
}

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

/// Inside namespace `netns`: gives its end of a veth pair, `interface`, the address `cidr`
/// and brings it and the loopback up.
fn configure_inside(netns: &str, interface: &str, cidr: &str) -> Result<(), String> {
    let in_ns = |args: &[&str]| {
        let mut all = vec!["netns", "exec", netns, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    };
    in_ns(&["addr", "add", cidr, "dev", interface])?;
    in_ns(&["link", "set", interface, "up"])?;
    in_ns(&["link", "set", "lo", "up"])
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
        configure_inside(&ns.name, &ns_if, &format!("{}/30", ns.ns_ip))?;
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

/// Hosts on one network segment: a bridge on this host (which is on the segment too, as the
/// first host, "A") and a network namespace per further host, each joined to the bridge by a
/// veth pair. Hosts reach each other directly (no routing, no forwarding), and each further
/// host's link can be cut alone.
pub struct Lan {
    bridge: String,
    hosts: Vec<LanHost>,
    /// This host's address on the segment.
    pub host_ip: String,
}

struct LanHost {
    netns: String,
    port: String,
    ip: String,
}

impl Lan {
    /// Creates the bridge and `hosts` namespaces `slimnode-<pid>-<tag>-<i>` on a /24 of their
    /// own (the addresses exist only on this segment).
    pub fn create(tag: u8, hosts: usize) -> Result<Lan, String> {
        let pid = std::process::id();
        let subnet = format!("10.233.{}", (pid % 60) * 4 + u32::from(tag % 4));
        let mut lan = Lan {
            bridge: format!("sb{}b{tag}", pid % 100_000),
            hosts: Vec::new(),
            host_ip: format!("{subnet}.254"),
        };
        ip(&["link", "add", &lan.bridge, "type", "bridge"])?;
        // From here on, Drop removes what was made.
        ip(&[
            "addr",
            "add",
            &format!("{}/24", lan.host_ip),
            "dev",
            &lan.bridge,
        ])?;
        ip(&["link", "set", &lan.bridge, "up"])?;
        for i in 0..hosts {
            let host = LanHost {
                netns: format!("slimnode-{pid}-{tag}-{i}"),
                port: format!("sb{}p{tag}{i}", pid % 100_000),
                ip: format!("{subnet}.{}", i + 1),
            };
            let inner = format!("sb{}i{tag}{i}", pid % 100_000);
            ip(&["netns", "add", &host.netns])?;
            lan.hosts.push(host);
            let host = lan.hosts.last().expect("just pushed");
            ip(&[
                "link", "add", &host.port, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &host.netns])?;
            ip(&["link", "set", &host.port, "master", &lan.bridge])?;
            ip(&["link", "set", &host.port, "up"])?;
            configure_inside(&host.netns, &inner, &format!("{}/24", host.ip))?;
        }
        Ok(lan)
    }

    /// The address of host `i` (0: the first namespace).
    pub fn ip(&self, i: usize) -> &str {
        &self.hosts[i].ip
    }

    /// The command prefix that runs a program on host `i`.
    pub fn wrapper(&self, i: usize) -> [&str; 4] {
        ["ip", "netns", "exec", &self.hosts[i].netns]
    }

    /// Cuts host `i` off the segment: nothing passes, and nobody is told.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].port, "down"]).expect("cutting the link");
    }

    /// Restores host `i`'s link.
    pub fn restore(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].port, "up"]).expect("restoring the link");
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["link", "del", &host.port]);
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
