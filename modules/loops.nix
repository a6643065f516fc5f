# The orchestrator's loop supervisor: a `loops` user with tmux and git, and
# `cc-ci-loops.service`, which on every boot records the boot in REBOOTS.md
# (once per kernel boot id) and starts the loops in resume mode
# (`loops boot`). `loops start` runs the long-lived watchdog in tmux; a timer
# re-runs the idempotent `loops start --resume` as a safety net in case that
# watchdog itself died.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.loops;
  common = config.services.cc-ci;
  loops = lib.escapeShellArgs ["${common.package}/bin/loops" "--config" cfg.configFile];
in {
  imports = [./common.nix];

  options.services.cc-ci.loops = {
    enable = lib.mkEnableOption "the supervisor of long-running agent loops (orchestrator host)";

    user = lib.mkOption {
      type = lib.types.str;
      default = "loops";
      description = "The user the loops run as; it owns the workspace and the agents' clones.";
    };

    workspace = lib.mkOption {
      type = lib.types.str;
      default = "/home/loops/workspace";
      description = "The orchestrator's workspace (the loops' state, logs and REBOOTS.md).";
    };

    configFile = lib.mkOption {
      type = lib.types.str;
      default = "${cfg.workspace}/loops.toml";
      defaultText = lib.literalExpression ''"''${config.services.cc-ci.loops.workspace}/loops.toml"'';
      description = ''
        The supervisor's TOML configuration, kept in the workspace (not in
        the Nix store: the loops' prompts and agents change without a
        rebuild).
      '';
    };

    extraPackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [];
      example = lib.literalExpression "[ pkgs.claude-code ]";
      description = "More packages on the loops' PATH, such as the agent command-line tools the configuration names.";
    };

    watchdogInterval = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = "5min";
      description = "Time between two runs of the idempotent `loops start --resume`, which restarts a dead watchdog; `null` disables the timer.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.${cfg.user} = {
      isNormalUser = true;
      home = "/home/${cfg.user}";
      createHome = true;
    };

    environment.systemPackages = [common.package pkgs.tmux pkgs.git];

    systemd.tmpfiles.settings."10-cc-ci-loops".${cfg.workspace}.d = {
      inherit (cfg) user;
      group = "users";
      mode = "0750";
    };

    systemd.services.cc-ci-loops = {
      description = "cc-ci: record this boot and resume the agent loops";
      after = ["network-online.target"];
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      path = [pkgs.tmux pkgs.git pkgs.openssh pkgs.coreutils pkgs.bash] ++ cfg.extraPackages;
      # A rebuild must not kill running loops; `loops boot` is for boots.
      restartIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        # The tmux server outlives `loops boot` in this unit's cgroup.
        RemainAfterExit = true;
        User = cfg.user;
        WorkingDirectory = cfg.workspace;
        ExecStart = "${loops} boot";
        ExecStop = "${loops} stop";
        TimeoutStartSec = "5min";
      };
    };

    systemd.services.cc-ci-loops-watchdog = lib.mkIf (cfg.watchdogInterval != null) {
      description = "cc-ci: make sure the agent loops and their watchdog run";
      after = ["cc-ci-loops.service"];
      path = [pkgs.tmux pkgs.git pkgs.openssh pkgs.coreutils pkgs.bash] ++ cfg.extraPackages;
      serviceConfig = {
        Type = "oneshot";
        User = cfg.user;
        WorkingDirectory = cfg.workspace;
        ExecStart = "${loops} start --resume";
        # The tmux server it may start must outlive this oneshot.
        KillMode = "process";
      };
    };

    systemd.timers.cc-ci-loops-watchdog = lib.mkIf (cfg.watchdogInterval != null) {
      wantedBy = ["timers.target"];
      timerConfig = {
        OnBootSec = cfg.watchdogInterval;
        OnUnitActiveSec = cfg.watchdogInterval;
      };
    };
  };
}
