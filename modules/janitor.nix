# The janitor: removes test apps (stacks, volumes, secrets, configs, abra
# env files) left by dead or finished runs. It never touches an app whose
# run still holds its lock. A oneshot on a timer.
{
  config,
  lib,
  ...
}: let
  cfg = config.services.cc-ci.janitor;
  common = config.services.cc-ci;
in {
  imports = [./common.nix];

  options.services.cc-ci.janitor = {
    enable = lib.mkEnableOption "the janitor that reaps test apps left by dead runs";

    interval = lib.mkOption {
      type = lib.types.str;
      default = "15min";
      description = "Time between two janitor runs (systemd time span, `OnUnitActiveSec`).";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.cc-ci-janitor = {
      description = "cc-ci: reap test apps left by dead or finished runs";
      after = ["docker.service"];
      requires = ["docker.service"];
      path = [common.abraPackage config.virtualisation.docker.package];
      environment = {
        CCCI_STATE_DIR = common.stateDir;
        CCCI_DOMAIN = common.domain;
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${common.package}/bin/janitor";
        User = common.user;
        Group = common.group;
        NoNewPrivileges = true;
        PrivateTmp = true;
      };
    };

    systemd.timers.cc-ci-janitor = {
      description = "cc-ci: run the janitor periodically";
      wantedBy = ["timers.target"];
      timerConfig = {
        OnBootSec = "5min";
        OnUnitActiveSec = cfg.interval;
        RandomizedDelaySec = "1min";
      };
    };
  };
}
