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
  userNeeded = (cfg.ci.enable or false) || (cfg.janitor.enable or false);
  # The concerns that write or read the results.
  resultsNeeded = (cfg.ci.enable or false) || (cfg.bridge.enable or false) || (cfg.dashboard.enable or false);
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
      default = "/var/lib/cc-ci-results";
      description = ''
        Where the Buildbot master keeps each build's results
        (`<recipe>/<run id>/`: results.json, logs, screenshots). Owned by the
        master's user, group {option}`services.cc-ci.resultsGroup`, mode
        2750; outside {option}`stateDir`, whose 0750 the readers could not
        traverse.
      '';
    };

    resultsGroup = lib.mkOption {
      type = lib.types.str;
      default = "cc-ci-results";
      description = ''
        The group through which the bridge and the dashboard (dynamic users
        given it as a supplementary group) read the results, and nothing
        else. The master, which writes them, owns them.
      '';
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "cc-ci";
      description = ''
        The system user that runs tests (the worker slots) and the janitor.
        It is in the `docker` group, which is root-equivalent: give this user
        nothing else.
      '';
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "cc-ci";
      description = "The group of {option}`services.cc-ci.user`.";
    };

    resolveImage = lib.mkOption {
      type = lib.types.enum ["always" "changed" "never"];
      default = "always";
      description = ''
        `docker stack deploy --resolve-image` for test apps and Traefik
        (CCCI_RESOLVE_IMAGE). `never` on a host without a registry (the VM
        tests): then an image the host lacks is the recipe's failure, named
        with its service, and nothing is pulled.
      '';
    };

    hostRoutes = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule {
        options = {
          url = lib.mkOption {
            type = lib.types.str;
            example = "https://builds.ci.example.org/";
            description = "The public URL; its host is the route's `Host` rule (a name under the wildcard domain, so the wildcard certificate covers it).";
          };
          pathPrefix = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "/hook";
            description = "Route only this path prefix on the host (null: every path).";
          };
          port = lib.mkOption {
            type = lib.types.port;
            description = "The port the host's service listens on (reached from Traefik at the docker_gwbridge gateway).";
          };
        };
      });
      default = {};
      description = ''
        The host's own web services that Traefik serves on the wildcard
        domain (set by the ci, bridge and dashboard concerns; the proxy
        concern deploys them as routes). Internal plumbing between modules.
      '';
      internal = true;
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
      # At boot systemd starts them (wantedBy). On `nixos-rebuild switch` the
      # activation script asks switch-to-configuration to restart them (the
      # file it reads after `daemon-reload`, so the new unit files run:
      # nixpkgs, pkgs/by-name/sw/switch-to-configuration-ng, "Handle the
      # activation script requesting the restart or reload of a unit"). The
      # switch waits for those jobs and exits 4 when one fails, so a failing
      # converge unit fails `nixos-rebuild switch`. The guard skips the
      # boot-time activation, which runs before systemd does.
      system.activationScripts.cc-ci-converge.text = ''
        if [ -d /run/systemd/system ]; then
          mkdir -p /run/nixos
          printf '%s\n' ${lib.escapeShellArgs cfg.convergeUnits} >>/run/nixos/activation-restart-list
        fi
      '';
    })
    (lib.mkIf resultsNeeded {
      users.groups.${cfg.resultsGroup} = {};
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
      };
    })
  ];
}
