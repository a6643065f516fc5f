# The Rust checks of `nix flake check`: build, clippy with warnings denied,
# rustfmt, and the tests that need no Docker (the build sandbox has none).
{
  pkgs,
  cc-ci,
  src,
}: let
  inherit (pkgs) lib;
  # The tests may read fixtures and test keys from tests/ (not the VM tests).
  testSrc = lib.fileset.toSource {
    root = src;
    fileset = lib.fileset.unions [
      (src + "/Cargo.toml")
      (src + "/Cargo.lock")
      (src + "/crates")
      (lib.fileset.maybeMissing (src + "/tests/fixtures"))
      (lib.fileset.maybeMissing (src + "/tests/recipes"))
      (lib.fileset.maybeMissing (src + "/tests/keys"))
      # Run or read by the loops' and test-support's tests.
      (src + "/scripts/versions.env")
      (src + "/scripts/loops-repos")
      (src + "/scripts/agent-clis")
    ];
  };
in {
  build = cc-ci;

  clippy = cc-ci.overrideAttrs (old: {
    pname = "cc-ci-clippy";
    nativeBuildInputs = old.nativeBuildInputs ++ [pkgs.clippy];
    buildPhase = ''
      runHook preBuild
      cargo clippy --workspace --all-targets --offline --locked -- --deny warnings
      runHook postBuild
    '';
    installPhase = "touch $out";
    doCheck = false;
  });

  rustfmt = cc-ci.overrideAttrs (old: {
    pname = "cc-ci-rustfmt";
    nativeBuildInputs = old.nativeBuildInputs ++ [pkgs.rustfmt];
    buildPhase = "cargo fmt --all --check";
    installPhase = "touch $out";
    doCheck = false;
  });

  # The sandbox has no Docker daemon, no Go-built tools and no Chromium. A
  # test missing a part fails (crates/test-support) unless skipping it is
  # allowed, as here: each skip is printed and logged. scripts/test runs
  # those tests on the Debian CI machine, where nothing may be skipped.
  tests = cc-ci.overrideAttrs {
    pname = "cc-ci-tests";
    src = testSrc;
    doCheck = true;
    # claude-code, opencode: scripts/agent-clis installs them from the npm
    # registry, which the sandbox cannot reach.
    CCCI_ALLOW_SKIP = "docker,swarm,sops,traefik,chromium,fixture-images,busybox-image,claude-code,opencode";
    # The loop supervisor's tests drive real tmux and git.
    nativeCheckInputs = [pkgs.git pkgs.tmux];
  };
}
