//! A recipe checkout as lint reads it: through the same readers the
//! deployers use (compose files, `.env.sample`, `abra.sh`), so lint judges
//! what a deploy would deploy.

use std::collections::BTreeMap;

use super::LintError;
use crate::recipe::abra_sh::AbraSh;
use crate::recipe::compose::ComposeFile;
use crate::recipe::env_file::EnvFile;
use crate::recipe::interpolate::interpolate_lenient;
use crate::recipe::version::RecipeVersion;

// ---------------------------------------------------------------------------
// Reading the checkout

/// A service merged over every compose file (abra loads them all together).
#[derive(Debug, Default, Clone)]
pub(super) struct Merged {
    /// Interpolated image; the last file that sets one wins.
    pub(super) image: Option<String>,
    /// None: no compose file mentions one; Some(enabled): the last that does.
    pub(super) healthcheck: Option<bool>,
    /// Interpolated deploy labels; later files win.
    pub(super) labels: BTreeMap<String, String>,
    pub(super) uses_configs: bool,
}

/// Everything lint reads from a checkout: the same models the deployers
/// read ([`ComposeFile`], [`EnvFile`], [`AbraSh`]), so lint judges what a
/// deploy would deploy.
#[derive(Debug)]
pub(super) struct Checkout {
    pub(super) name: String,
    /// Every `compose*yml` of the top folder, by name, with the name.
    pub(super) compose: Vec<(String, ComposeFile)>,
    pub(super) services: BTreeMap<String, Merged>,
    pub(super) env_sample: Option<EnvFile>,
    /// `None` when there is no abra.sh.
    pub(super) abra_sh: Option<AbraSh>,
    /// `README.md`'s text; `None` when missing.
    pub(super) readme: Option<String>,
}

impl Checkout {
    /// What lint reads of the version `v`: its top folder's compose files
    /// (abra globs `compose**yml` there), `.env.sample`, `abra.sh` and the
    /// README, from the model; nothing is read from disk again.
    pub(super) fn of(v: &RecipeVersion) -> Result<Checkout, LintError> {
        let dir = v.dir.as_path();
        let mut compose = Vec::new();
        for (name, source) in v
            .compose
            .iter()
            .filter(|(n, _)| !n.contains('/') && n.starts_with("compose") && n.ends_with("yml"))
        {
            let file = source.compose(false).map_err(|e| LintError::Compose {
                file: e.file,
                line: e.line,
                detail: e.detail,
            })?;
            compose.push((name.clone(), file));
        }
        if compose.is_empty() {
            return Err(LintError::NoCompose { dir: dir.to_path_buf() });
        }
        let env_sample = v.env_sample.clone();
        let abra_sh = v.abra_sh.clone();
        let readme = v.readme.clone();

        // abra interpolates the compose files with the sample env; abra.sh's
        // exports override it at deploy time (docs/abra.md, "Deploying",
        // step 6).
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        if let Some(env) = &env_sample {
            for e in &env.entries {
                vars.insert(e.key.clone(), e.value.clone());
            }
        }
        if let Some(sh) = &abra_sh {
            vars.extend(sh.exports.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut services: BTreeMap<String, Merged> = BTreeMap::new();
        for (_, file) in &compose {
            for s in &file.services {
                let m = services.entry(s.name.clone()).or_default();
                if let Some(image) = s.image.as_deref().filter(|i| !i.is_empty()) {
                    m.image = Some(interpolate_lenient(image, &vars));
                }
                if s.healthcheck_declared {
                    m.healthcheck = Some(s.healthcheck);
                }
                m.uses_configs |= !s.configs.is_empty();
                for (k, v) in &s.deploy_labels {
                    m.labels.insert(k.trim().to_string(), interpolate_lenient(v, &vars));
                }
            }
        }

        let name = crate::recipe::recipe_name(env_sample.as_ref(), dir);
        Ok(Checkout {
            name,
            compose,
            services,
            env_sample,
            abra_sh,
            readme,
        })
    }
}
