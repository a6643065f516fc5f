# The Rust checks of `nix flake check`: build, clippy with warnings denied,
# rustfmt, and the tests that need no Docker (the build sandbox has none).
# Each check sees only its source set of pkgs/sources.json; scripts/nix-check
# runs the same commands in copies holding only those sets on the Debian CI
# machine, so a file missing from a set fails there too.
{
  pkgs,
  cc-ci,
}: let
  inherit (pkgs) lib;
  sources = import ./sources.nix {inherit lib;};

  # Every component crates/test-support knows (`Component::name`) but tmux,
  # which nativeCheckInputs below provides. A component missing here makes
  # the tests needing it panic in the sandbox; scripts/nix-check compares
  # this list with the crate's.
  allowSkip = [
    "docker"
    "swarm"
    "sops"
    "traefik"
    "chromium"
    "fixture-images"
    "busybox-image"
    "traefik-stack"
    "abra"
    "gitea"
    "buildbot"
    # scripts/agent-clis installs them from the npm registry, which the
    # sandbox cannot reach.
    "claude-code"
    "opencode"
  ];
in {
  build = cc-ci;

  clippy = cc-ci.overrideAttrs (old: {
    pname = "cc-ci-clippy";
    src = sources "clippy";
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
    # rustfmt.toml (max_width) is part of this set: without it rustfmt
    # applies its default width and the check fails.
    src = sources "rustfmt";
    nativeBuildInputs = old.nativeBuildInputs ++ [pkgs.rustfmt];
    buildPhase = ''
      runHook preBuild
      cargo fmt --all --check
      runHook postBuild
    '';
    installPhase = "touch $out";
    doCheck = false;
  });

  # The sandbox has no Docker daemon, no Go-built tools and no Chromium. A
  # test missing a part fails (crates/test-support) unless skipping it is
  # allowed, as here: each skip is logged, and the end of the check phase
  # lists them and prints one line "N tests skipped: ...", as scripts/test
  # does on the Debian CI machine, where nothing may be skipped.
  tests = cc-ci.overrideAttrs (old: {
    pname = "cc-ci-tests";
    src = sources "tests";
    doCheck = true;
    # The tests run scripts/test, scripts/fixture-recipes ...; they start
    # with `#!/usr/bin/env bash` and the sandbox has no /usr/bin/env.
    postPatch =
      (old.postPatch or "")
      + ''
        patchShebangs scripts
      '';
    CCCI_ALLOW_SKIP = lib.concatStringsSep "," allowSkip;
    # The loop supervisor's tests drive real tmux and git; the fixture
    # recipes are git repositories.
    nativeCheckInputs = (old.nativeCheckInputs or []) ++ [pkgs.git pkgs.tmux];
    preCheck = ''
      # No writable home and no /tmp in the sandbox.
      export HOME=$(mktemp -d) TMUX_TMPDIR=$TMPDIR
      export CCCI_SKIP_LOG=$TMPDIR/ccci-skips.log
      : >"$CCCI_SKIP_LOG"
    '';
    postCheck = ''
      skipped=$(wc -l <"$CCCI_SKIP_LOG")
      if [ "$skipped" -gt 0 ]; then
        echo "skipped ($CCCI_SKIP_LOG):"
        while IFS=$'\t' read -r component test why; do
          echo "  $test: $component missing ($why)"
        done <"$CCCI_SKIP_LOG"
      fi
      echo "$skipped tests skipped: $(cut -f1 "$CCCI_SKIP_LOG" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')"
    '';
  });
}
