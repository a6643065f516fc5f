//! `ccci lint`: abra's rules on a recipe checkout, by the lint rung's own
//! code ([`cc_ci::recipe::lint`]), printed as the rung's `lint.txt` or as
//! JSON. Reads the checkout alone: no Docker, no network, nothing written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cc_ci::recipe::lint::{LintReport, Outcome};
use cc_ci::recipe::Recipe;

use crate::OutputFormat;

/// The examples at the end of `ccci lint --help`.
pub const EXAMPLES: &str = "Examples:
  ccci lint ~/recipes/gitea                  a checkout
  ccci lint --recipes-dir ~/recipes gitea    a name under --recipes-dir
  ccci lint -f json . | jq '.findings[] | select(.outcome == \"failed\")'
  ccci lint . || echo \"exit $?: 1 = an error-level rule failed, 2 = not a recipe\"";

/// `ccci lint`'s arguments.
#[derive(clap::Args)]
pub struct LintArgs {
    /// A recipe checkout (a folder with compose.yml and .env.sample), or
    /// the name of one under --recipes-dir.
    recipe: String,
    /// Where named recipes are looked up.
    #[arg(long, env = "CCCI_RECIPES_DIR", default_value = "/var/lib/cc-ci/recipes")]
    recipes_dir: PathBuf,
    /// text (abra's table, then a line per rule failed or not checked) or json.
    #[arg(long, short, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// Runs `ccci lint` (exit statuses: see `ccci lint --help`).
pub fn run(args: &LintArgs) -> Result<ExitCode> {
    let dir = crate::resolve(&args.recipe, &args.recipes_dir);
    // What `ccci test` refuses as not a recipe, `ccci lint` refuses too.
    Recipe::open(&dir).with_context(|| {
        format!(
            "nothing was linted: give a recipe checkout, or a recipe name under --recipes-dir ({})",
            args.recipes_dir.display()
        )
    })?;
    let report = cc_ci::recipe::lint::lint(&dir).context("nothing was linted")?;
    match args.format {
        OutputFormat::Text => print!("{}", text(&report)),
        OutputFormat::Json => println!("{:#}", json(&report, &dir)),
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The refs of the findings whose outcome `pick` accepts.
fn refs(report: &LintReport, pick: impl Fn(&Outcome) -> bool) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|f| pick(&f.outcome))
        .map(|f| f.rule.reference)
        .collect()
}

/// The rung's table, then a closing line with the exit status.
fn text(report: &LintReport) -> String {
    let mut out = report.table();
    let errors: Vec<&str> = report.errors().iter().map(|f| f.rule.reference).collect();
    let warnings: Vec<&str> = report.warnings().iter().map(|f| f.rule.reference).collect();
    let unchecked = refs(report, |o| matches!(o, Outcome::Skipped(_)));
    let list = |v: &[&str]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    out.push_str(&format!(
        "\nerrors: {}; warnings: {}; not checked: {}\n",
        list(&errors),
        list(&warnings),
        list(&unchecked)
    ));
    out.push_str(if errors.is_empty() {
        "no error-level rule failed: exit 0\n"
    } else {
        "an error-level rule failed (the lint rung fails; abra refuses to deploy a release): exit 1\n"
    });
    out
}

fn json(report: &LintReport, dir: &std::path::Path) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let (outcome, why) = match &f.outcome {
                Outcome::Satisfied => ("satisfied", None),
                Outcome::Failed => ("failed", None),
                Outcome::Skipped(why) => ("not-checked", Some(why.clone())),
            };
            serde_json::json!({
                "ref": f.rule.reference,
                "rule": f.rule.description,
                "severity": f.rule.severity.as_str(),
                "outcome": outcome,
                "why_not_checked": why,
                "detail": f.detail,
                "resolve": f.rule.how_to_fix,
            })
        })
        .collect();
    serde_json::json!({
        "recipe": report.recipe,
        "dir": dir.display().to_string(),
        "passed": report.passed(),
        "errors": report.errors().iter().map(|f| f.rule.reference).collect::<Vec<_>>(),
        "warnings": report.warnings().iter().map(|f| f.rule.reference).collect::<Vec<_>>(),
        "not_checked": refs(report, |o| matches!(o, Outcome::Skipped(_))),
        "findings": findings,
    })
}
