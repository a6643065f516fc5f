# A single-node Docker Swarm: Docker without live-restore (Swarm refuses it)
# and with capped logs, `swarm-init` converging the swarm and the `proxy`
# overlay network on every boot and activation, HTTP and HTTPS open.
{
  config,
  lib,
  ...
}: let
  cfg = config.services.cc-ci.swarm;
  common = config.services.cc-ci;
in {
  imports = [./common.nix];

  options.services.cc-ci.swarm = {
    enable = lib.mkEnableOption "a single-node Docker Swarm for cc-ci's test apps";

    advertiseAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      example = "192.0.2.10";
      description = ''
        The address the swarm advertises when swarm-init creates it
        (`docker swarm init --advertise-addr`). A single-node swarm needs no
        other; a multi-node one needs an address the other nodes reach.
      '';
    };

    proxyNetwork = lib.mkOption {
      type = lib.types.str;
      default = "proxy";
      description = "The attachable overlay network Traefik and every app join (Co-op Cloud's convention is `proxy`).";
    };

    logMaxSize = lib.mkOption {
      type = lib.types.str;
      default = "10m";
      description = "Largest size of one container log file (json-file `max-size`).";
    };

    logMaxFiles = lib.mkOption {
      type = lib.types.ints.positive;
      default = 3;
      description = "Log files kept per container (json-file `max-file`).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open TCP 80 and 443 for Traefik.";
    };
  };

  config = lib.mkIf cfg.enable {
    virtualisation.docker = {
      enable = true;
      # Swarm mode and live-restore do not go together.
      liveRestore = false;
      daemon.settings = {
        log-driver = "json-file";
        log-opts = {
          max-size = cfg.logMaxSize;
          max-file = toString cfg.logMaxFiles;
        };
      };
    };

    # Swarm refuses live-restore, so restarting dockerd kills every task,
    # test runs included. A rebuild that bumps Docker must not do that under
    # running tests: the new dockerd takes over at the next reboot (or
    # `systemctl restart docker` when no run is in flight).
    systemd.services.docker.restartIfChanged = false;

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [80 443];

    systemd.services.swarm-init = {
      description = "cc-ci: converge the single-node swarm and the proxy network";
      after = ["docker.service" "network-online.target"];
      requires = ["docker.service"];
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      # Converges on every activation too, not only at boot.
      restartIfChanged = true;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = lib.escapeShellArgs ["${common.package}/bin/swarm-init" "--network" cfg.proxyNetwork "--advertise-addr" cfg.advertiseAddress];
      };
    };
  };
}
