# What the cc-ci host runs: every concern enabled, options set, no logic.
# The VM tests (tests/nixos/rebuild.nix) boot this file without hardware.nix.
#
# Site settings marked REPLACE are this deployment's: domain names, the
# forge, the enrolled repositories. Secrets are not here: they come from the
# flake's `secrets` input (cc-ci.yaml, wildcard.sops.yaml; layout in
# secrets/README.md), by default the TEST-ONLY folder tests/secrets, which
# an operator points at their own before the first rebuild (docs/install.md).
{
  config,
  inputs,
  ...
}: let
  secrets = inputs.secrets;
  secret = name: config.sops.secrets.${name}.path;
in {
  imports = [inputs.sops-nix.nixosModules.sops];

  networking.hostName = "cc-ci";
  system.stateVersion = "25.11";
  time.timeZone = "UTC";

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  nix.settings.experimental-features = ["nix-command" "flakes"];

  # The host's age key decrypts both secrets files. It is created on the
  # host, never committed and never copied into the Nix store. A changed
  # secret restarts the units that read it.
  sops = {
    defaultSopsFile = "${secrets}/cc-ci.yaml";
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
    secrets = {
      "buildbot/worker-password".restartUnits = ["buildbot-master.service"] ++ config.services.cc-ci.ci.workerUnits;
      "buildbot/bridge-password".restartUnits = ["buildbot-master.service" "cc-ci-bridge.service"];
      "bridge/gitea-token".restartUnits = ["cc-ci-bridge.service"];
      "bridge/webhook-secret".restartUnits = ["cc-ci-bridge.service"];
    };
  };

  services.cc-ci = {
    domain = "ci.example.org"; # REPLACE: *.<domain> must resolve to this host
    admins.sshKeys = []; # REPLACE: the operators' SSH public keys (root's authorized keys)

    swarm.enable = true;

    proxy = {
      enable = true;
      certSopsFile = "${secrets}/wildcard.sops.yaml";
      ageKeyFile = "/var/lib/sops-nix/key.txt";
      # REPLACE: UNVERIFIED. No machine cc-ci is built on can reach
      # git.coopcloud.tech to list the recipe's tags, so this is not known to
      # be a release. Pick one from `abra recipe versions traefik` (or
      # `git ls-remote --tags https://git.coopcloud.tech/coop-cloud/traefik.git`);
      # traefik-deploy fails the switch, naming the tag, if it does not exist.
      traefik.version = "4.0.0+v3.5.3";
    };

    ci = {
      enable = true;
      url = "https://builds.ci.example.org/"; # REPLACE: Buildbot's public URL (live logs), routed by Traefik
      maxConcurrentTests = 2;
      buildTimeout = 60;
      workerPasswordFile = secret "buildbot/worker-password";
      bridgePasswordFile = secret "buildbot/bridge-password";
    };

    bridge = {
      enable = true;
      giteaUrl = "https://git.coopcloud.tech";
      org = "coop-cloud";
      repos = ["coop-cloud/custom-html"];
      pollInterval = 30;
      botTokenFile = secret "bridge/gitea-token";
      buildbotPasswordFile = secret "buildbot/bridge-password";
      webhookSecretFile = secret "bridge/webhook-secret";
      publicUrl = "https://hooks.ci.example.org"; # REPLACE: Gitea's webhook posts to <publicUrl>/hook
    };

    dashboard = {
      enable = true;
      publicUrl = "https://dashboard.ci.example.org"; # REPLACE
    };

    janitor.enable = true;
  };
}
