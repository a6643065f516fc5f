# What every cc-ci concern shares: the packages, the wildcard domain, where
# state and results live, the system user that runs tests, and the
# operators' SSH keys.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci;
  ours = import ../pkgs {inherit pkgs;};
  # The concerns that run as (or write files for) the cc-ci user; `or false`
  # because a host may import only some of the concern modules.
  userNeeded = (cfg.ci.enable or false) || (cfg.janitor.enable or false) || (cfg.dashboard.enable or false);
in {
  options.services.cc-ci = {
    package = lib.mkOption {
      type = lib.types.package;
      default = ours.cc-ci;
      defaultText = lib.literalExpression "the Rust workspace of this flake (pkgs/cc-ci.nix)";
      description = ''
        The cc-ci Rust workspace: ccci, swarm-init, cert-install,
        traefik-deploy, janitor, bridge, dashboard and loops, all in one
        package.
      '';
    };

    abraPackage = lib.mkOption {
      type = lib.types.package;
      default = ours.abra;
      defaultText = lib.literalExpression "abra pinned in pkgs/abra.nix";
      description = "abra, the Co-op Cloud CLI, used by traefik-deploy, the CI agent and the janitor.";
    };

    domain = lib.mkOption {
      type = lib.types.str;
      example = "ci.example.org";
      description = ''
        The wildcard domain. Traefik serves the certificate for
        `*.<domain>`; every test app gets `<recipe>-<id>.<domain>`. The DNS
        record `*.<domain>` must point at this host.
      '';
    };

    stateDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/cc-ci";
      description = "Where cc-ci keeps its state (per-run ABRA_DIRs, locks, the proxy's abra directory).";
    };

    resultsDir = lib.mkOption {
      type = lib.types.str;
      default = "${cfg.stateDir}/results";
      defaultText = lib.literalExpression ''"''${config.services.cc-ci.stateDir}/results"'';
      description = "Where test runs write their results (results.json, logs, screenshots); the dashboard reads them.";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "cc-ci";
      description = ''
        The system user that runs tests (the CI agent) and the janitor; its
        group owns the results, which the dashboard (a dynamic user of its
        own) reads through it. It is in the `docker` group, which is root-equivalent:
        give this user nothing else.
      '';
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "cc-ci";
      description = "The group of {option}`services.cc-ci.user`.";
    };

    admins.sshKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
      example = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... operator@laptop"];
      description = ''
        The operators' SSH public keys: root's authorized keys on each cc-ci
        host (and, on the orchestrator, the loops user's, to attach to the
        agents' tmux sessions). Empty: nobody can log in over SSH with a key.
      '';
    };

    convergeUnits = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
      internal = true;
      description = ''
        Oneshot units (`Type=oneshot`, `RemainAfterExit`) that must converge
        on every activation, not only at boot or when their unit changed.
        The concern modules add theirs; each is idempotent, so a second
        activation changes nothing.
      '';
    };
  };

  config = lib.mkMerge [
    {
      users.users.root.openssh.authorizedKeys.keys = cfg.admins.sshKeys;
      warnings = lib.optional (cfg.admins.sshKeys == [] && config.services.openssh.enable) ''
        services.cc-ci.admins.sshKeys is empty: no operator's key may log in over SSH
        (password login is off). Set it in the host's configuration.nix.
      '';
    }
    (lib.mkIf (cfg.convergeUnits != []) {
      # At boot systemd starts them (wantedBy); on `nixos-rebuild switch` this
      # queues a re-run even when the unit did not change. The guard skips the
      # boot-time activation, which runs before systemd does.
      system.activationScripts.cc-ci-converge.text = ''
        if [ -d /run/systemd/system ]; then
          ${config.systemd.package}/bin/systemctl restart --no-block ${lib.escapeShellArgs cfg.convergeUnits} || true
        fi
      '';
    })
    (lib.mkIf userNeeded {
      users.users.${cfg.user} = {
        isSystemUser = true;
        inherit (cfg) group;
        home = cfg.stateDir;
        extraGroups = lib.optional config.virtualisation.docker.enable "docker";
      };
      users.groups.${cfg.group} = {};

      systemd.tmpfiles.settings."10-cc-ci" = {
        ${cfg.stateDir}.d = {
          inherit (cfg) user group;
          mode = "0750";
        };
        ${cfg.resultsDir}.d = {
          inherit (cfg) user group;
          mode = "0755";
        };
      };
    })
  ];
}
