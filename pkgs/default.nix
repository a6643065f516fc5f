# The packages this flake builds; `packages.<system>` and the modules' defaults.
{pkgs}: {
  # Every binary of the Rust workspace (ccci, swarm-init, cert-install,
  # traefik-deploy, janitor, bridge, dashboard, loops), from one build.
  cc-ci = pkgs.callPackage ./cc-ci.nix {};
  # abra, the Co-op Cloud CLI, pinned to a release.
  abra = pkgs.callPackage ./abra.nix {};
  # The Nix formatter: `nix fmt`, checks.formatting and scripts/nix-check.
  alejandra-lite = pkgs.callPackage ./alejandra-lite {};
}
