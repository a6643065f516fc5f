//! Resource limits of a test app: every service gets
//! `deploy.resources.limits` (CPUs and memory), so that one recipe under
//! test cannot starve the runs beside it on the host.
//!
//! The caps are per service (per task): [`ResourceLimits::default`] is
//! 1 CPU and 1 GiB, a recipe's `[limits]` settings may raise them. A
//! recipe's own lower limit stays; a higher one is capped. A reservation
//! above the effective limit is lowered to it (Docker refuses a reservation
//! over the limit). The native deployer writes them into its override
//! ([`super::overrides`]); `docker stack deploy` merges them over the
//! recipe's fields one by one. Units are Docker's: CPUs as a decimal number
//! (stored in nano-CPUs, as the Engine API's `NanoCPUs`), memory in bytes
//! with an optional binary unit (`512M`, `1g`: docker/go-units'
//! `RAMInBytes`, 1024-based).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::recipe::compose::ComposeSet;
use crate::recipe::interpolate::interpolate_lenient;

/// Nano-CPUs in one CPU.
pub const NANO: u64 = 1_000_000_000;
/// The default cap of a service's CPUs (1 CPU), nano-CPUs.
pub const DEFAULT_NANO_CPUS: u64 = NANO;
/// The default cap of a service's memory (1 GiB), bytes.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;
/// The least memory Docker accepts as a limit (6 MiB), bytes.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;

/// The caps for each service of a test app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// CPUs, in nano-CPUs (10⁻⁹ CPU).
    pub nano_cpus: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            nano_cpus: DEFAULT_NANO_CPUS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

impl ResourceLimits {
    /// `1 CPU and 1 GiB`.
    pub fn describe(&self) -> String {
        let c = format_cpus(self.nano_cpus);
        format!(
            "{c} CPU{} and {}",
            if self.nano_cpus == NANO { "" } else { "s" },
            format_bytes(self.memory_bytes)
        )
    }
}

/// The limits one service gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// `limits.cpus`, nano-CPUs.
    pub nano_cpus: u64,
    /// `limits.memory`, bytes.
    pub memory_bytes: u64,
    /// `reservations.cpus` lowered to the limit, when the recipe's was above it.
    pub reserve_nano_cpus: Option<u64>,
    /// `reservations.memory` lowered to the limit, when the recipe's was above it.
    pub reserve_memory_bytes: Option<u64>,
}

impl ServiceLimits {
    /// The `resources:` block of a compose `deploy:`, each line indented by
    /// `indent` (values as strings, as the v3 compose schema wants them).
    pub fn render(&self, indent: &str) -> String {
        let mut y = format!(
            "{indent}resources:\n{indent}  limits:\n{indent}    cpus: \"{}\"\n{indent}    memory: \"{}\"\n",
            format_cpus(self.nano_cpus),
            self.memory_bytes
        );
        if self.reserve_nano_cpus.is_some() || self.reserve_memory_bytes.is_some() {
            let _ = writeln!(y, "{indent}  reservations:");
            if let Some(c) = self.reserve_nano_cpus {
                let _ = writeln!(y, "{indent}    cpus: \"{}\"", format_cpus(c));
            }
            if let Some(m) = self.reserve_memory_bytes {
                let _ = writeln!(y, "{indent}    memory: \"{m}\"");
            }
        }
        y
    }
}

/// The limits of every service of `compose` under `caps`: the recipe's own
/// (interpolated with the app env `env`) where lower, else the cap.
pub fn per_service(
    compose: &ComposeSet,
    env: &BTreeMap<String, String>,
    caps: &ResourceLimits,
) -> BTreeMap<String, ServiceLimits> {
    let value = |raw: &Option<String>, parse: fn(&str) -> Option<u64>| {
        raw.as_deref().and_then(|r| parse(&interpolate_lenient(r, env)))
    };
    compose
        .services
        .values()
        .map(|s| {
            let nano_cpus = value(&s.limits.cpus, parse_cpus).map_or(caps.nano_cpus, |c| c.min(caps.nano_cpus));
            let memory_bytes =
                value(&s.limits.memory, parse_memory).map_or(caps.memory_bytes, |m| m.min(caps.memory_bytes));
            let l = ServiceLimits {
                nano_cpus,
                memory_bytes,
                reserve_nano_cpus: value(&s.reservations.cpus, parse_cpus)
                    .filter(|r| *r > nano_cpus)
                    .map(|_| nano_cpus),
                reserve_memory_bytes: value(&s.reservations.memory, parse_memory)
                    .filter(|r| *r > memory_bytes)
                    .map(|_| memory_bytes),
            };
            (s.name.clone(), l)
        })
        .collect()
}

/// A number of CPUs (`"0.5"`, `2`) in nano-CPUs; `None` unless a finite
/// number above 0.
pub fn parse_cpus(s: &str) -> Option<u64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v > 0.0 && v <= 1e6).then(|| (v * NANO as f64).round() as u64)
}

/// Memory as docker/go-units' `RAMInBytes` reads it: a decimal number, an
/// optional space, an optional unit `k m g t p` (any case, 1024-based),
/// optionally followed by `i` and/or `b` (`512M`, `1GiB`, `1.5g`, `1024`).
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    let v: f64 = num.parse().ok()?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars();
    let (power, tail) = match chars.next() {
        None => (0, ""),
        Some(c) => match "kmgtp".find(c) {
            Some(i) => (i as i32 + 1, chars.as_str()),
            None => (0, rest.as_str()),
        },
    };
    if !matches!(tail, "" | "b" | "i" | "ib") {
        return None;
    }
    let bytes = v * 1024f64.powi(power);
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Nano-CPUs as Docker's `--cpus` writes them: `1`, `0.5`, `1.25`.
pub fn format_cpus(nano: u64) -> String {
    let (whole, frac) = (nano / NANO, nano % NANO);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:09}").trim_end_matches('0').to_string()
    }
}

/// Bytes for a reader: `1 GiB`, `512 MiB`, `1536 MiB`, `123 bytes`.
pub fn format_bytes(b: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {unit}", b >> shift);
        }
    }
    if b >= 1 << 20 && b.is_multiple_of(1 << 10) {
        return format!("{} KiB", b >> 10);
    }
    format!("{b} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_as_docker_reads_them() {
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("512M"), Some(512 << 20));
        assert_eq!(parse_memory("1GiB"), Some(1 << 30));
        assert_eq!(parse_memory("1.5g"), Some(3 << 29));
        assert_eq!(parse_memory("64 mb"), Some(64 << 20));
        assert_eq!(parse_memory("1073741824"), Some(1 << 30));
        for bad in ["", "g", "1x", "1 gig", "-1g", "0"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
        assert_eq!(parse_cpus("0.5"), Some(NANO / 2));
        assert_eq!(parse_cpus("2"), Some(2 * NANO));
        assert_eq!(parse_cpus("0"), None);
        assert_eq!(parse_cpus("lots"), None);
        assert_eq!(format_cpus(NANO), "1");
        assert_eq!(format_cpus(NANO / 2), "0.5");
        assert_eq!(format_cpus(1_250_000_000), "1.25");
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(1536 << 20), "1536 MiB");
        assert_eq!(ResourceLimits::default().describe(), "1 CPU and 1 GiB");
    }

    #[test]
    fn lower_limits_stay_higher_ones_are_capped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("compose.yml"),
            "services:\n  app:\n    image: a\n  db:\n    image: b\n    deploy:\n      resources:\n        limits: {cpus: \"0.25\", memory: \"${DB_MEMORY:-256M}\"}\n  \
             big:\n    image: c\n    deploy:\n      resources:\n        limits: {cpus: \"4\", memory: 8g}\n        reservations: {cpus: \"2\", memory: 4g}\n",
        )
        .unwrap();
        let c = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap();
        let caps = ResourceLimits::default();
        let l = per_service(&c, &BTreeMap::new(), &caps);
        assert_eq!(
            l["app"],
            ServiceLimits {
                nano_cpus: NANO,
                memory_bytes: 1 << 30,
                reserve_nano_cpus: None,
                reserve_memory_bytes: None
            },
            "none of its own: the caps"
        );
        assert_eq!((l["db"].nano_cpus, l["db"].memory_bytes), (NANO / 4, 256 << 20));
        assert_eq!(
            l["big"],
            ServiceLimits {
                nano_cpus: NANO,
                memory_bytes: 1 << 30,
                reserve_nano_cpus: Some(NANO),
                reserve_memory_bytes: Some(1 << 30)
            }
        );
        let env = BTreeMap::from([("DB_MEMORY".to_string(), "4g".to_string())]);
        let raised = ResourceLimits {
            nano_cpus: 2 * NANO,
            memory_bytes: 2 << 30,
        };
        let l = per_service(&c, &env, &raised);
        assert_eq!(l["db"].memory_bytes, 2 << 30, "the env's value, capped");
        assert_eq!((l["big"].nano_cpus, l["big"].reserve_nano_cpus), (2 * NANO, None));
        let y = l["big"].render("    ");
        assert!(
            y.contains("    resources:\n      limits:\n        cpus: \"2\"\n        memory: \"2147483648\"\n      reservations:\n        memory: \"2147483648\"\n"),
            "{y}"
        );
    }
}
