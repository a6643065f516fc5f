//! Adaptations: the ways a run departs from plain abra behaviour, and why
//! (results.json `adaptations`); `ccci plan` foretells the same ones.

use crate::deploy::ipvs::VipSupport;
use crate::results::Adaptation;
use crate::settings::Settings;

use super::Run;

impl Run<'_> {
    /// Records a way this run departs from plain abra behaviour, and why
    /// (results.json `adaptations`), and says so in the progress.
    pub fn adapt(&mut self, what: &str, why: &str) {
        self.progress.note(&format!("{what} ({why})"));
        self.results.adaptations.push(Adaptation {
            what: what.into(),
            why: why.into(),
        });
    }
}

/// The adaptation a run records when the deploy gives `services`
/// `deploy.endpoint_mode: dnsrr` (virtual IPs do not route on this host,
/// as `vip` found); `ccci plan` foretells the same.
pub fn dnsrr_adaptation(services: &[String], vip: &VipSupport) -> Adaptation {
    let why = match vip {
        VipSupport::NoIpvs { looked_at } => {
            format!("this kernel has no IPVS ({looked_at}): swarm virtual IPs do not route")
        }
        VipSupport::Routes { .. } => "virtual IPs route here".into(),
    };
    Adaptation {
        what: format!(
            "deploy.endpoint_mode: dnsrr for services without published ports: {}",
            services.join(", ")
        ),
        why,
    }
}

/// The adaptation a run with the native deployer records for cc-ci's
/// resource caps under `settings` (`ccci test` records it, `ccci plan`
/// foretells it).
pub fn limits_adaptation(settings: &Settings) -> Adaptation {
    Adaptation {
        what: format!(
            "every service runs under deploy.resources.limits of at most {} (cc-ci's override; a recipe's own lower limits stay)",
            settings.limits.describe()
        ),
        why: match &settings.limits_reason {
            Some(r) => format!("one test app must not starve the runs beside it; raised by the settings: {r}"),
            None => "one test app must not starve the runs beside it ([limits] in the recipe's ccci.toml raises it)".into(),
        },
    }
}
