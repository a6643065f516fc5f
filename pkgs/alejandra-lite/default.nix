# The Nix formatter of this repository: Alejandra's library (crates.io
# `alejandra`, pinned in Cargo.lock) behind a small command line. The Debian
# CI machines build this same crate with `cargo install --locked`
# (scripts/nix-check), so `nix fmt`, checks.formatting and CI agree byte for
# byte.
{
  lib,
  rustPlatform,
}:
rustPlatform.buildRustPackage {
  pname = "alejandra-lite";
  version = (lib.importTOML ./Cargo.toml).package.version;
  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./Cargo.toml
      ./Cargo.lock
      ./src
    ];
  };
  cargoLock.lockFile = ./Cargo.lock;
  meta = {
    description = "Alejandra Nix formatter (library 3.1.0) behind a minimal CLI";
    license = lib.licenses.unlicense;
    mainProgram = "alejandra-lite";
  };
}
