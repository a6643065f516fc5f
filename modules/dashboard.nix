# The public dashboard: a grid of recipes with their levels, per-recipe
# history and badges, all rendered from results files (never live state).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.dashboard;
  common = config.services.cc-ci;
  configFile = (pkgs.formats.toml {}).generate "cc-ci-dashboard.toml" {
    results_dir = common.resultsDir;
    public_url = cfg.publicUrl;
    listen = "${cfg.listenAddress}:${toString cfg.port}";
  };
in {
  imports = [./common.nix];

  options.services.cc-ci.dashboard = {
    enable = lib.mkEnableOption "the public results dashboard";

    publicUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://dashboard.ci.example.org";
      description = "Public URL of the dashboard (links in PR comments and badges point here).";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address the dashboard listens on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8082;
      description = "Port the dashboard listens on.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.cc-ci-dashboard = {
      description = "cc-ci: results dashboard";
      after = ["network.target"];
      wantedBy = ["multi-user.target"];
      serviceConfig = {
        ExecStart = "${common.package}/bin/dashboard --config ${configFile}";
        User = common.user;
        Group = common.group;
        Restart = "on-failure";
        RestartSec = 5;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        # Reads results only; renders into its cache directory.
        ReadOnlyPaths = [common.resultsDir];
        CacheDirectory = "cc-ci-dashboard";
        RestrictAddressFamilies = ["AF_UNIX" "AF_INET" "AF_INET6"];
      };
    };
  };
}
