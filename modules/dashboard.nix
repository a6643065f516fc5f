# The public dashboard: the recipe grid, each recipe's history and badge,
# each run's page and card, a JSON API and an Atom feed of regressions, all
# rendered from the results files (never live state). It runs as a dynamic,
# unprivileged user that may read the results (through the results group)
# and nothing else: never in the docker group, no writable path but its
# cache.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.dashboard;
  common = config.services.cc-ci;
  # `or`: a host may import this module without the CI concern's.
  ciEnabled = common.ci.enable or false;
  ciPort = common.ci.port or 8010;
  proxyEnabled = common.proxy.enable or false;
  configFile = (pkgs.formats.toml {}).generate "cc-ci-dashboard.toml" ({
      results_dir = common.resultsDir;
      public_url = cfg.publicUrl;
      listen = "${cfg.listenAddress}:${toString cfg.port}";
      clone_url = cfg.cloneUrl;
    }
    // lib.optionalAttrs (cfg.buildbotUrl != null) {buildbot_url = cfg.buildbotUrl;});
in {
  imports = [./common.nix];

  options.services.cc-ci.dashboard = {
    enable = lib.mkEnableOption "the public results dashboard";

    publicUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://dashboard.ci.example.org";
      description = "Public URL of the dashboard (links in the Atom feed, the API and badges point here).";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default =
        if proxyEnabled
        then "0.0.0.0"
        else "127.0.0.1";
      defaultText = lib.literalExpression ''"0.0.0.0" with the proxy concern (Traefik reaches it over docker_gwbridge; the firewall opens the port on that interface only), else "127.0.0.1"'';
      description = "Address the dashboard listens on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8082;
      description = "Port the dashboard listens on.";
    };

    cloneUrl = lib.mkOption {
      type = lib.types.str;
      default = "https://git.coopcloud.tech/coop-cloud/{recipe}.git";
      description = "A recipe's clone URL, `{recipe}` replaced: the reproduce commands on run pages.";
    };

    buildbotUrl = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default =
        if ciEnabled
        then "http://127.0.0.1:${toString ciPort}"
        else null;
      defaultText = lib.literalExpression ''"http://127.0.0.1:''${toString config.services.cc-ci.ci.port}" when the CI concern is enabled, else null'';
      description = "Buildbot's API base URL for the queue page (running and waiting builds); null: no queue.";
    };
  };

  config = lib.mkIf cfg.enable {
    # Traefik routes the public URL's host here, with the wildcard certificate.
    services.cc-ci.hostRoutes = lib.mkIf proxyEnabled {
      dashboard = {
        url = cfg.publicUrl;
        inherit (cfg) port;
      };
    };

    systemd.services.cc-ci-dashboard = {
      description = "cc-ci: results dashboard";
      after = ["network.target"];
      wantedBy = ["multi-user.target"];
      # The summary card's font (resvg reads font files, not fontconfig).
      environment.CCCI_FONT_DIRS = "${pkgs.dejavu_fonts}/share/fonts";
      serviceConfig = {
        ExecStart = "${common.package}/bin/dashboard --config ${configFile}";
        # A user of its own, made at start: not the cc-ci user, which is in
        # the docker group. The results group lets it read the results.
        DynamicUser = true;
        SupplementaryGroups = [common.resultsGroup];
        Restart = "on-failure";
        RestartSec = 5;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        CapabilityBoundingSet = "";
        SystemCallArchitectures = "native";
        SystemCallFilter = ["@system-service" "~@privileged"];
        UMask = "0077";
        # Reads the results only; no path is writable but its cache.
        ReadOnlyPaths = ["-${common.resultsDir}"];
        CacheDirectory = "cc-ci-dashboard";
        RestrictAddressFamilies = ["AF_UNIX" "AF_INET" "AF_INET6"];
      };
    };
  };
}
