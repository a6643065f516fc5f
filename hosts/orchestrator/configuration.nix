# What the orchestrator host runs: the loop supervisor and the orchestrator's
# own agent session, nothing else. Options only; the how is modules/loops.nix
# (the operator's view: docs/orchestrator.md).
#
# Site settings marked REPLACE are this deployment's. Secrets are not here:
# they come from the flake's `secrets` input (orchestrator.yaml; layout in
# secrets/README.md), by default the TEST-ONLY folder tests/secrets, which an
# operator points at their own before the first rebuild (docs/install.md).
{
  config,
  inputs,
  lib,
  ...
}: let
  secret = name: config.sops.secrets.${name}.path;
  # A changed API key or git credential reaches the agents only through a
  # new tmux server: both restart, and `loops boot` resumes every session.
  restart = ["cc-ci-loops-tmux.service" "cc-ci-loops.service"];
in {
  imports = [inputs.sops-nix.nixosModules.sops];

  networking.hostName = "cc-ci-orchestrator";
  system.stateVersion = "25.11";
  time.timeZone = "UTC";

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  nix.settings.experimental-features = ["nix-command" "flakes"];

  # Claude Code's CLI is unfree: allowed by name, nothing else.
  nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) ["claude-code"];

  # The host's age key decrypts orchestrator.yaml; it is created on the host,
  # never committed and never copied into the Nix store.
  sops = {
    defaultSopsFile = "${inputs.secrets}/orchestrator.yaml";
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
    secrets = {
      "loops/agent-api-key".restartUnits = restart;
      "loops/git-credentials".restartUnits = restart;
    };
  };

  services.cc-ci = {
    admins.sshKeys = []; # REPLACE: the operators' SSH public keys (root and the loops user)

    loops = {
      enable = true;
      watchdogInterval = "5min";
      # REPLACE: the repository the loops work on; null starts an empty origin.
      origin.upstream = null;
      git = {
        userName = "cc-ci loops";
        userEmail = "loops@cc-ci-orchestrator.invalid"; # REPLACE
        credentialsFile = secret "loops/git-credentials";
      };
      apiKeyFile = secret "loops/agent-api-key";
      # The agents work alone: no permission prompt may stop them. The loops
      # user has no sudo and owns only its home.
      backends.claude.args = ["--permission-mode" "bypassPermissions"];
      orchestrator.enable = true;
    };
  };
}
