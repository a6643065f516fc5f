//! Whether this host's swarm can route virtual IPs.
//!
//! A swarm service in the default endpoint mode (`vip`) gets one virtual IP
//! that the engine load-balances with the kernel's IPVS (moby's
//! `libnetwork`, `service_linux.go`). A kernel without IPVS (some VMs, such
//! as our Firecracker CI machines) leaves those addresses unroutable:
//! `<service>` answers "No route to host" while `tasks.<service>` (the tasks'
//! own addresses) works. Traefik is unaffected (it routes to task addresses).
//!
//! cc-ci does not edit recipes for this: the deployer adds
//! `deploy.endpoint_mode: dnsrr` for services without published ports in
//! the override it writes, and the run records that as an environment
//! adaptation in `results.json`, never silently.

use std::path::Path;

/// What the kernel offers for swarm virtual IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VipSupport {
    /// IPVS is there (loaded, built in, or loadable as a module).
    Routes {
        /// What showed it (a path).
        evidence: String,
    },
    /// No IPVS: virtual IPs do not route.
    NoIpvs {
        /// What was looked at.
        looked_at: String,
    },
}

impl VipSupport {
    /// True when virtual IPs route.
    pub fn routes(&self) -> bool {
        matches!(self, VipSupport::Routes { .. })
    }
}

/// Probes the running kernel: `/proc/net/ip_vs` (IPVS loaded or built in),
/// `/sys/module/ip_vs`, or an `ip_vs.ko*` in
/// `/lib/modules/<release>/modules.dep` (loadable: dockerd loads it when a
/// swarm network needs it).
pub fn probe() -> VipSupport {
    probe_in(Path::new("/"))
}

/// [`probe`] against a root folder (tests give a fake one).
pub fn probe_in(root: &Path) -> VipSupport {
    for p in ["proc/net/ip_vs", "sys/module/ip_vs"] {
        let path = root.join(p);
        if path.exists() {
            return VipSupport::Routes {
                evidence: format!("/{p} exists"),
            };
        }
    }
    let release = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let dep = root.join("lib/modules").join(&release).join("modules.dep");
    if !release.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&dep) {
            if text.lines().any(|l| l.contains("/ip_vs.ko")) {
                return VipSupport::Routes {
                    evidence: format!("ip_vs is a loadable module of kernel {release}"),
                };
            }
        }
    }
    VipSupport::NoIpvs {
        looked_at: format!(
            "no /proc/net/ip_vs, no /sys/module/ip_vs, no ip_vs module for kernel {}",
            if release.is_empty() { "?" } else { &release }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_the_three_signs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
        std::fs::write(r.join("proc/sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        assert!(!probe_in(r).routes());
        std::fs::create_dir_all(r.join("lib/modules/6.1.0-test")).unwrap();
        std::fs::write(
            r.join("lib/modules/6.1.0-test/modules.dep"),
            "kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n",
        )
        .unwrap();
        assert!(probe_in(r).routes());
        std::fs::remove_dir_all(r.join("lib")).unwrap();
        std::fs::create_dir_all(r.join("proc/net")).unwrap();
        std::fs::write(r.join("proc/net/ip_vs"), "").unwrap();
        assert!(probe_in(r).routes());
    }
}
