//! `cert-install`: decrypt the wildcard certificate and key from a sops file
//! and install them as versioned swarm secrets for the Co-op Cloud Traefik
//! app. A thin CLI over [`cc_ci::host::cert`]; see that module for the behaviour.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cc_ci::host::{cert, sops, swarm};
use clap::Parser;

/// Install the wildcard TLS certificate Traefik serves for every test app.
///
/// Reads a sops-encrypted file (YAML, or JSON) holding the PEM certificate
/// chain and its private key, decrypts it with an age identity, verifies the
/// file's MAC and checks that the key matches the certificate, all before
/// touching Docker: a tampered or wrong file leaves existing secrets as they
/// were. Then it makes a version of the swarm secrets
/// `<stack>_ssl_cert_<vN>` and `<stack>_ssl_key_<vN>` hold that pair, where
/// the stack is the Traefik app's domain with dots as underscores (abra's
/// naming). The same certificate again creates nothing ("nothing to do"); a
/// different one creates the next version and keeps the old ones, so running
/// services keep working until Traefik is redeployed with the new version.
///
/// Example:
///   cert-install --sops-file secrets/wildcard.sops.yaml \
///     --age-key-file /var/lib/cc-ci/age.key --domain traefik.ci.example.org
///
/// Prints the version in force; set the Traefik app's
/// SECRET_WILDCARD_CERT_VERSION and SECRET_WILDCARD_KEY_VERSION to it.
/// No secret material is ever printed.
#[derive(Parser)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// The sops-encrypted file holding the certificate and key.
    #[arg(long)]
    sops_file: PathBuf,
    /// The age identity file that can decrypt it (as written by `age-keygen`).
    #[arg(long, env = "SOPS_AGE_KEY_FILE")]
    age_key_file: PathBuf,
    /// The Traefik app's domain, e.g. traefik.ci.example.org; it names the
    /// secrets' stack (traefik_ci_example_org).
    #[arg(long)]
    domain: String,
    /// The top-level key holding the PEM certificate chain.
    #[arg(long, default_value = "cert")]
    cert_key: String,
    /// The top-level key holding the PEM private key.
    #[arg(long, default_value = "key")]
    key_key: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("cert-install: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let ids = sops::AgeIdentities::from_file(&cli.age_key_file)?;
    let wildcard = cert::WildcardCert::from_sops_file(&cli.sops_file, &ids, &cli.cert_key, &cli.key_key)?;
    println!(
        "cert-install: {} decrypted and verified: certificate for {}, valid until {}",
        cli.sops_file.display(),
        wildcard.dns_names.join(", "),
        wildcard.not_after
    );
    let docker = swarm::connect()
        .await
        .context("cannot reach the Docker engine (is dockerd running? scripts/dockerd starts it)")?;
    let report = cert::install(&docker, &cli.domain, &wildcard).await?;
    for name in &report.created {
        println!("cert-install: created secret {name}");
    }
    if report.created.is_empty() {
        println!(
            "cert-install: nothing to do: {} already holds this certificate in stack {}",
            report.version, report.stack
        );
    }
    println!(
        "cert-install: in force: {} (SECRET_WILDCARD_CERT_VERSION={} SECRET_WILDCARD_KEY_VERSION={})",
        report.version, report.version, report.version
    );
    Ok(())
}
