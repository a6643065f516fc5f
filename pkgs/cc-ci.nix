# The Rust workspace (Cargo.toml, crates/*) as one package: every binary of
# every member lands in $out/bin. Dependencies come from Cargo.lock
# (cargoLock.lockFile), so no vendor hash has to be kept in step by hand.
{
  lib,
  rustPlatform,
}:
rustPlatform.buildRustPackage {
  pname = "cc-ci";
  version = (lib.importTOML ../crates/cc-ci/Cargo.toml).package.version;

  # Source set "package" of pkgs/sources.json (scripts/nix-check builds the
  # same set in a copy, so a file the build needs outside it fails there too).
  src = import ./sources.nix {inherit lib;} "package";
  cargoLock.lockFile = ../Cargo.lock;

  # The tests run in checks.<system>.tests (pkgs/checks.nix), not on every
  # build of the package a host installs.
  doCheck = false;

  meta = {
    description = "CI server for Co-op Cloud recipes: the lifecycle suite, its oneshots and services";
    homepage = "https://git.coopcloud.tech/coop-cloud/cc-ci";
    license = lib.licenses.agpl3Plus;
    mainProgram = "ccci";
    platforms = lib.platforms.linux;
  };
}
