# What the cc-ci host runs: every concern enabled, options set, no logic.
# The VM tests (tests/nixos/rebuild.nix) boot this file without hardware.nix.
#
# Site settings marked REPLACE are this deployment's: domain names, the
# forge, the enrolled repositories. Secrets are not here: they are in
# secrets/cc-ci.yaml and secrets/wildcard.sops.yaml (see secrets/README.md),
# which the operator creates before the first rebuild (docs/install.md).
{config, ...}: {
  networking.hostName = "cc-ci";
  system.stateVersion = "25.11";
  time.timeZone = "UTC";

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  nix.settings.experimental-features = ["nix-command" "flakes"];

  # The host's age key decrypts both secrets files. It is created on the
  # host, never committed and never copied into the Nix store.
  sops = {
    defaultSopsFile = ../../secrets/cc-ci.yaml;
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
    secrets."bridge/gitea-token" = {};
    secrets."bridge/webhook-secret" = {};
    # buildbot/worker-password and buildbot/bridge-password: declared by the
    # ci module (services.cc-ci.ci.secrets).
  };

  services.cc-ci = {
    domain = "ci.example.org"; # REPLACE: *.<domain> must resolve to this host

    swarm.enable = true;

    proxy = {
      enable = true;
      certSopsFile = ../../secrets/wildcard.sops.yaml;
      ageKeyFile = "/var/lib/sops-nix/key.txt";
      traefik.version = "4.0.0+v3.5.3"; # REPLACE: unverified; pick one from `abra recipe versions traefik`
    };

    ci = {
      enable = true;
      url = "https://builds.ci.example.org/"; # REPLACE: Buildbot's public URL (live logs)
      maxConcurrentTests = 2;
      buildTimeout = 60;
    };

    bridge = {
      enable = true;
      giteaUrl = "https://git.coopcloud.tech";
      org = "coop-cloud";
      repos = ["coop-cloud/custom-html"];
      pollInterval = 30;
      botTokenFile = config.sops.secrets."bridge/gitea-token".path;
      buildbotPasswordFile = config.sops.secrets."buildbot/bridge-password".path;
      webhookSecretFile = config.sops.secrets."bridge/webhook-secret".path;
    };

    dashboard = {
      enable = true;
      publicUrl = "https://dashboard.ci.example.org"; # REPLACE
    };

    janitor.enable = true;
  };
}
