# Settings both VM tests share: the TEST-ONLY keys and certificate from
# tests/keys (a `*.ci.test` wildcard signed by a test CA), the test secrets
# file, and the Traefik recipe and image the VM cannot download.
#
# Two stand-ins (fakes, named as such), because a NixOS VM test has no
# network: the Traefik recipe (tests/nixos/traefik-recipe-standin, served
# from a local git repository) and the Traefik image (built by Nix from
# nixpkgs' traefik, loaded before traefik-deploy runs).
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
  recipeRepo = "/var/lib/ccci-test/traefik.git";
  recipeVersion = "0.0.0+test";
in {
  virtualisation = {
    memorySize = 3072;
    diskSize = 8192;
    cores = 2;
  };

  sops = {
    defaultSopsFile = ../secrets/cc-ci.yaml;
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
  };
  # The TEST-ONLY age key, put where a real host keeps its own, before
  # sops-nix decrypts at activation (on a real host the key is never in the
  # store; this one is public test material anyway).
  system.activationScripts.ccci-test-age-key.text = ''
    install -D -m 0400 ${../keys/age.key} /var/lib/sops-nix/key.txt
  '';
  system.activationScripts.setupSecrets.deps = ["ccci-test-age-key"];

  services.cc-ci = {
    domain = "ci.test";
    proxy = {
      certSopsFile = ../keys/wildcard.sops.yaml;
      ageKeyFile = "/var/lib/sops-nix/key.txt";
      traefik = {
        recipeSource = recipeRepo;
        version = recipeVersion;
      };
    };
  };

  # Test apps resolve to this machine.
  networking.hosts."127.0.0.1" = ["traefik.ci.test" "probe.ci.test"];
  security.pki.certificateFiles = [../keys/ca.crt];
  environment.systemPackages = [pkgs.curl pkgs.openssl pkgs.jq];

  systemd.services.ccci-test-standins = {
    description = "TEST ONLY: load the stand-in Traefik image and recipe";
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
        git -C "$work" -c user.name=test -c user.email=test@ci.test add -A
        git -C "$work" -c user.name=test -c user.email=test@ci.test commit -q -m "stand-in traefik recipe"
        git -C "$work" -c user.name=test -c user.email=test@ci.test tag -a ${lib.escapeShellArg recipeVersion} -m ${lib.escapeShellArg recipeVersion}
        mkdir -p "$(dirname ${recipeRepo})"
        git clone -q --bare "$work" ${recipeRepo}
        rm -rf "$work"
      fi
    '';
  };
}
