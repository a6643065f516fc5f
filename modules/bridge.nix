# The bridge between Gitea and Buildbot: watches the enrolled recipe repos'
# pull requests (polling first, HMAC-verified webhook optional), authorises
# `!testme` by org membership, forces Buildbot builds of `ccci test` and posts
# commit statuses and the one PR comment per PR; a weekly sweep tests each
# recipe's newest release. The `bridge` binary reads one TOML file written
# from these options (keys: crates/bridge/src/config.rs); secrets reach it
# only as systemd credentials; its state (SQLite) is in its StateDirectory.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.bridge;
  common = config.services.cc-ci;
  creds = "/run/credentials/cc-ci-bridge.service";
  # `or`: a host may import this module without the ci module.
  ciEnabled = common.ci.enable or false;
  ciPort = common.ci.port or 8010;
  dashboardEnabled = common.dashboard.enable or false;
  proxyEnabled = common.proxy.enable or false;
  settings =
    {
      gitea_url = cfg.giteaUrl;
      gitea_token_file = "${creds}/gitea-token";
      inherit (cfg) org repos;
      poll_interval_s = cfg.pollInterval;
      sweep_interval_s = cfg.sweepInterval;
      listen = "${cfg.listenAddress}:${toString cfg.port}";
      buildbot_url = cfg.buildbotUrl;
      buildbot_public_url = cfg.buildbotPublicUrl;
      buildbot_password_file = "${creds}/buildbot-password";
      results_dir = cfg.resultsDir;
      state_db = "/var/lib/cc-ci-bridge/state.sqlite";
    }
    // lib.optionalAttrs (cfg.webhookSecretFile != null) {
      webhook_secret_file = "${creds}/webhook-secret";
    }
    // lib.optionalAttrs (cfg.dashboardUrl != null) {
      dashboard_url = cfg.dashboardUrl;
    };
  configFile = (pkgs.formats.toml {}).generate "cc-ci-bridge.toml" settings;
in {
  imports = [./common.nix];

  options.services.cc-ci.bridge = {
    enable = lib.mkEnableOption "the Gitea to Buildbot bridge (`!testme`)";

    giteaUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://git.coopcloud.tech";
      description = "Base URL of the Gitea (or Forgejo) instance whose pull requests are watched.";
    };

    botTokenFile = lib.mkOption {
      type = lib.types.str;
      example = lib.literalExpression ''config.sops.secrets."bridge/gitea-token".path'';
      description = ''
        File (outside the Nix store) holding the bot's Gitea API token: read
        access to the enrolled repos, comment and commit-status rights, and
        membership of {option}`org`, so that the members endpoint answers
        (Gitea redirects a non-member's token to the public-members check).
      '';
    };

    org = lib.mkOption {
      type = lib.types.str;
      example = "coop-cloud";
      description = "Organisation whose members may trigger a test with `!testme`.";
    };

    repos = lib.mkOption {
      type = lib.types.nonEmptyListOf lib.types.str;
      example = ["coop-cloud/custom-html" "coop-cloud/hedgedoc"];
      description = ''
        Enrolled recipe repositories (`owner/name`). One that Gitea does not
        know is an error in the log and on `/status`, never skipped quietly.
      '';
    };

    pollInterval = lib.mkOption {
      type = lib.types.ints.positive;
      default = 30;
      description = "Seconds between two polls of the enrolled repositories' comments (the primary trigger).";
    };

    sweepInterval = lib.mkOption {
      type = lib.types.ints.unsigned;
      default = 7 * 24 * 3600;
      description = "Seconds between two sweeps that test each recipe's newest release tag (no comment); 0 turns the sweep off.";
    };

    webhookSecretFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        File holding the HMAC secret of Gitea's webhook (`POST <bridge>/hook`,
        event `issue_comment`). `null` disables the endpoint; polling alone
        then triggers runs.
      '';
    };

    buildbotUrl = lib.mkOption {
      type = lib.types.str;
      default = "http://127.0.0.1:${toString ciPort}/";
      defaultText = lib.literalExpression ''"http://127.0.0.1:''${toString config.services.cc-ci.ci.port}/"'';
      description = "Where the bridge reaches Buildbot's API (with a trailing `/`).";
    };

    buildbotPublicUrl = lib.mkOption {
      type = lib.types.str;
      default =
        if ciEnabled
        then common.ci.url
        else cfg.buildbotUrl;
      defaultText = lib.literalExpression "config.services.cc-ci.ci.url";
      description = "Buildbot's public URL: the base of the build links in statuses and comments.";
    };

    dashboardUrl = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default =
        if dashboardEnabled
        then common.dashboard.publicUrl
        else null;
      defaultText = lib.literalExpression "config.services.cc-ci.dashboard.publicUrl when the dashboard is enabled, else null";
      description = ''
        The dashboard's public URL. PR comments then show the run's badge
        from it and link its run page and files; null: they do not.
      '';
    };

    buildbotPasswordFile = lib.mkOption {
      type = lib.types.str;
      example = lib.literalExpression ''config.sops.secrets."buildbot/bridge-password".path'';
      description = "File (outside the Nix store) holding the password of Buildbot's `bridge` user.";
    };

    resultsDir = lib.mkOption {
      type = lib.types.str;
      default = common.resultsDir;
      defaultText = lib.literalExpression "config.services.cc-ci.resultsDir";
      description = "The master's results directory, where the bridge reads each build's results.json and screenshot.";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default =
        if proxyEnabled && cfg.publicUrl != null
        then "0.0.0.0"
        else "127.0.0.1";
      defaultText = lib.literalExpression ''"0.0.0.0" when routed through the proxy (Traefik reaches it over docker_gwbridge; the firewall opens the port on that interface only), else "127.0.0.1"'';
      description = "Address `/hook` and `/status` listen on.";
    };

    publicUrl = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "https://hooks.ci.example.org";
      description = ''
        Public base URL of the webhook (Gitea posts to `<publicUrl>/hook`).
        With the proxy concern, Traefik routes `/hook` on its host to the
        bridge with the wildcard certificate; `/status` stays on the host.
        null: no public route (polling alone triggers runs).
      '';
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8081;
      description = "Port of `/hook` and `/status`.";
    };
  };

  config = lib.mkIf cfg.enable {
    services.cc-ci.hostRoutes = lib.mkIf (proxyEnabled && cfg.publicUrl != null) {
      bridge-hook = {
        url = cfg.publicUrl;
        pathPrefix = "/hook";
        inherit (cfg) port;
      };
    };

    systemd.services.cc-ci-bridge = {
      description = "cc-ci: Gitea pull requests to Buildbot builds";
      after = ["network-online.target"] ++ lib.optional ciEnabled "buildbot-master.service";
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      # The summary card's font (the bridge draws each run's card).
      environment.CCCI_FONT_DIRS = "${pkgs.dejavu_fonts}/share/fonts";
      serviceConfig = {
        ExecStartPre = "${common.package}/bin/bridge check --config ${configFile}";
        ExecStart = "${common.package}/bin/bridge serve --config ${configFile}";
        LoadCredential =
          [
            "gitea-token:${cfg.botTokenFile}"
            "buildbot-password:${cfg.buildbotPasswordFile}"
          ]
          ++ lib.optional (cfg.webhookSecretFile != null) "webhook-secret:${cfg.webhookSecretFile}";
        DynamicUser = true;
        # Reads the results through their group, nothing else of the host's.
        SupplementaryGroups = [common.resultsGroup];
        StateDirectory = "cc-ci-bridge";
        ReadOnlyPaths = ["-${cfg.resultsDir}"];
        Restart = "always";
        RestartSec = 10;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        RestrictAddressFamilies = ["AF_UNIX" "AF_INET" "AF_INET6"];
      };
    };
  };
}
