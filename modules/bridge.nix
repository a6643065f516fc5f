# The bridge between Gitea and Woodpecker: watches enrolled recipe repos'
# pull requests (polling first, HMAC-verified webhook optional), authorises
# `!testme` by org membership, starts pipelines and posts statuses and
# comments. The `bridge` binary reads one TOML file written from these
# options; secrets reach it only as systemd credentials.
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
  ciPort = common.ci.port or 8000;
  settings =
    {
      gitea_url = cfg.giteaUrl;
      org = cfg.org;
      repos = cfg.repos;
      poll_interval = cfg.pollInterval;
      public_url = cfg.publicUrl;
      listen = "${cfg.listenAddress}:${toString cfg.port}";
      woodpecker_url = cfg.woodpeckerUrl;
      gitea_token_file = "${creds}/gitea-token";
      woodpecker_token_file = "${creds}/woodpecker-token";
    }
    // lib.optionalAttrs (cfg.webhookSecretFile != null) {
      webhook_secret_file = "${creds}/webhook-secret";
    };
  configFile = (pkgs.formats.toml {}).generate "cc-ci-bridge.toml" settings;
in {
  imports = [./common.nix];

  options.services.cc-ci.bridge = {
    enable = lib.mkEnableOption "the Gitea to Woodpecker bridge (`!testme`)";

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
        membership of {option}`org` so that the members endpoint answers.
      '';
    };

    org = lib.mkOption {
      type = lib.types.str;
      example = "coop-cloud";
      description = "Organisation whose members may trigger a test with `!testme`.";
    };

    repos = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
      example = ["coop-cloud/custom-html" "coop-cloud/hedgedoc"];
      description = ''
        Enrolled recipe repositories (`owner/name`). A repository not listed
        here is never tested, and the bridge says so when asked.
      '';
    };

    pollInterval = lib.mkOption {
      type = lib.types.ints.positive;
      default = 30;
      description = "Seconds between two polls of the enrolled repositories' pull requests and comments.";
    };

    webhookSecretFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        File holding the HMAC secret of Gitea's webhook. `null` disables the
        webhook endpoint; polling alone then triggers runs.
      '';
    };

    publicUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://bridge.ci.example.org";
      description = "Public URL of the bridge (the webhook target and the base of links it posts).";
    };

    woodpeckerUrl = lib.mkOption {
      type = lib.types.str;
      default = "http://127.0.0.1:${toString ciPort}";
      defaultText = lib.literalExpression ''"http://127.0.0.1:''${toString config.services.cc-ci.ci.port}"'';
      description = "Where the bridge reaches Woodpecker's API.";
    };

    woodpeckerTokenFile = lib.mkOption {
      type = lib.types.str;
      example = lib.literalExpression ''config.sops.secrets."bridge/woodpecker-token".path'';
      description = "File (outside the Nix store) holding a Woodpecker API token allowed to start pipelines.";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address the webhook endpoint listens on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8081;
      description = "Port of the webhook endpoint.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.cc-ci-bridge = {
      description = "cc-ci: Gitea pull requests to Woodpecker pipelines";
      after = ["network-online.target"] ++ lib.optional ciEnabled "woodpecker-server.service";
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      serviceConfig = {
        ExecStart = "${common.package}/bin/bridge --config ${configFile}";
        LoadCredential =
          [
            "gitea-token:${cfg.botTokenFile}"
            "woodpecker-token:${cfg.woodpeckerTokenFile}"
          ]
          ++ lib.optional (cfg.webhookSecretFile != null) "webhook-secret:${cfg.webhookSecretFile}";
        DynamicUser = true;
        StateDirectory = "cc-ci-bridge";
        Restart = "on-failure";
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
