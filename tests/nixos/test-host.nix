# Settings both VM tests share: the TEST-ONLY age key (tests/keys), a
# `*.ci.test` wildcard from the test CA, and stand-ins for everything a NixOS
# VM test cannot download (it has no network).
#
# Stand-ins (fakes, named as such):
#   - the Traefik recipe (tests/nixos/traefik-recipe-standin, served from a
#     local git repository) and its image (nixpkgs' traefik);
#   - the helper and restic images `ccci test` uses (nixpkgs' busybox and
#     restic), preloaded by cc-ci-images.service instead of pulled;
#   - `vm-site`, a two-release recipe on busybox httpd (vm-site-recipe.nix),
#     served from a local git repository, that the VM tests force a real
#     Buildbot build of.
{
  config,
  lib,
  pkgs,
  ...
}: let
  traefikImage = pkgs.dockerTools.buildLayeredImage {
    name = "traefik";
    tag = "ccci-test";
    contents = [pkgs.traefik];
    config.Entrypoint = ["/bin/traefik"];
  };
  # `rm` for the volume witnesses; `sleep` for the routes' idle task.
  helperImage = pkgs.dockerTools.buildLayeredImage {
    name = "ccci-test/busybox";
    tag = "nixpkgs";
    contents = [pkgs.busybox];
    config.Cmd = ["sh"];
  };
  # Entrypoint `restic`, `rm` on PATH (what the backup rung needs).
  resticImage = pkgs.dockerTools.buildLayeredImage {
    name = "ccci-test/restic";
    tag = "nixpkgs";
    contents = [pkgs.restic pkgs.busybox];
    config.Entrypoint = ["restic"];
  };
  vmSite = import ./vm-site-recipe.nix {inherit pkgs;};
  recipeRepo = "/var/lib/ccci-test/traefik.git";
  recipeVersion = "0.0.0+test";
  # A recipe tree -> a bare repository with one annotated tag per release.
  gitCommit = ''git -C "$work" -c user.name=test -c user.email=test@ci.test'';
in {
  virtualisation = {
    memorySize = 4096;
    diskSize = 8192;
    cores = 2;
  };

  # The TEST-ONLY age key, put where a real host keeps its own, before
  # sops-nix decrypts at activation (on a real host the key is never in the
  # store; this one is public test material anyway).
  system.activationScripts.ccci-test-age-key.text = ''
    install -D -m 0400 ${../keys/age.key} /var/lib/sops-nix/key.txt
  '';
  system.activationScripts.setupSecrets.deps = ["ccci-test-age-key"];

  services.cc-ci = {
    # The test certificate covers *.ci.test and nothing else.
    domain = lib.mkForce "ci.test";
    # No registry: every image is preloaded.
    resolveImage = "never";
    proxy.traefik = {
      recipeSource = lib.mkForce recipeRepo;
      version = lib.mkForce recipeVersion;
    };
    ci = {
      helperImage = "ccci-test/busybox:nixpkgs";
      resticImage = "ccci-test/restic:nixpkgs";
      preloadImages = [helperImage resticImage vmSite.image];
    };
  };

  # Test apps and the host routes resolve to this machine.
  networking.hosts."127.0.0.1" = ["traefik.ci.test" "probe.ci.test" "builds.ci.test" "hooks.ci.test" "dashboard.ci.test"];
  security.pki.certificateFiles = [../keys/ca.crt];
  environment.systemPackages = [pkgs.curl pkgs.openssl pkgs.jq pkgs.git];

  systemd.services.ccci-test-standins = {
    description = "TEST ONLY: load the stand-in Traefik image, make the stand-in recipes' repositories";
    after = ["docker.service"];
    requires = ["docker.service"];
    before = ["traefik-deploy.service"];
    requiredBy = ["traefik-deploy.service"];
    path = [config.virtualisation.docker.package pkgs.git pkgs.coreutils];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
    };
    script = ''
      docker load < ${traefikImage}
      if [ ! -d ${recipeRepo} ]; then
        work=$(mktemp -d)
        cp -r ${./traefik-recipe-standin}/. "$work"
        chmod -R u+w "$work"
        git -C "$work" init -q -b main
        ${gitCommit} add -A
        ${gitCommit} commit -q -m "stand-in traefik recipe"
        ${gitCommit} tag -a ${lib.escapeShellArg recipeVersion} -m ${lib.escapeShellArg recipeVersion}
        mkdir -p "$(dirname ${recipeRepo})"
        git clone -q --bare "$work" ${recipeRepo}
        rm -rf "$work"
      fi
      # vm-site: one commit and tag per release, oldest first; readable by
      # the worker slots (they clone it like any recipe).
      if [ ! -d ${vmSite.repo} ]; then
        work=$(mktemp -d)
        git -C "$work" init -q -b main
        ${lib.concatMapStrings (r: ''
          find "$work" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
          cp -rL ${r.tree}/. "$work"
          chmod -R u+w "$work"
          ${gitCommit} add -A
          ${gitCommit} commit -q -m ${lib.escapeShellArg "release ${r.version}"}
          ${gitCommit} tag -a ${lib.escapeShellArg r.version} -m ${lib.escapeShellArg r.version}
        '')
        vmSite.releases}
        mkdir -p "$(dirname ${vmSite.repo})"
        git clone -q --bare "$work" ${vmSite.repo}
        chmod -R a+rX "$(dirname ${vmSite.repo})"
        rm -rf "$work"
      fi
    '';
  };
}
