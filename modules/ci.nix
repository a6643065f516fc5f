# The CI engine: a Woodpecker server (Gitea forge) and one agent on the
# `local` backend, which runs `ccci test` steps directly on this host. The
# agent takes at most `maxConcurrentTests` workflows at once; Woodpecker
# queues the rest and kills runs that pass the build timeout. Secrets come
# from sops-nix as environment files, never from the Nix store.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.ci;
  common = config.services.cc-ci;
  agentUnit = "woodpecker-agent-${cfg.agentName}";
  sec = cfg.secrets;
  # `or`: a host may import this module without the proxy module.
  proxyEnabled = common.proxy.enable or false;
in {
  imports = [./common.nix];

  options.services.cc-ci.ci = {
    enable = lib.mkEnableOption "the Woodpecker server and the local-backend agent that run cc-ci's tests";

    url = lib.mkOption {
      type = lib.types.str;
      example = "https://woodpecker.ci.example.org";
      description = ''
        The public URL of the Woodpecker web interface (`WOODPECKER_HOST`).
        The Gitea OAuth application must redirect to `<url>/authorize`.
      '';
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address the Woodpecker server's HTTP and gRPC listeners bind to.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8000;
      description = "HTTP port of the Woodpecker server (`WOODPECKER_SERVER_ADDR`).";
    };

    grpcPort = lib.mkOption {
      type = lib.types.port;
      default = 9000;
      description = "gRPC port agents connect to (`WOODPECKER_GRPC_ADDR`).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open {option}`port` in the firewall (when the UI is not reached through a proxy).";
    };

    maxConcurrentTests = lib.mkOption {
      type = lib.types.ints.positive;
      default = 2;
      description = ''
        How many test runs (Woodpecker workflows) this host runs at once:
        the agent's `WOODPECKER_MAX_WORKFLOWS`. Woodpecker queues the rest.
        Each run deploys one app on the swarm, so size this to the host's
        memory and cores.
      '';
    };

    buildTimeout = lib.mkOption {
      type = lib.types.ints.positive;
      default = 60;
      description = ''
        Minutes after which Woodpecker kills a run (both
        `WOODPECKER_DEFAULT_PIPELINE_TIMEOUT` and
        `WOODPECKER_MAX_PIPELINE_TIMEOUT`, so a repository cannot raise it).
      '';
    };

    admins = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
      example = ["alice"];
      description = "Gitea logins that are Woodpecker administrators (`WOODPECKER_ADMIN`).";
    };

    gitea = {
      url = lib.mkOption {
        type = lib.types.str;
        example = "https://git.coopcloud.tech";
        description = "Base URL of the Gitea (or Forgejo) forge (`WOODPECKER_GITEA_URL`).";
      };

      clientId = lib.mkOption {
        type = lib.types.str;
        description = ''
          Client ID of the Gitea OAuth2 application (`WOODPECKER_GITEA_CLIENT`;
          not secret). Its secret is read from sops, see {option}`secrets`.
        '';
      };

      orgs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
        example = ["coop-cloud"];
        description = "If set, only members of these organisations may log in to Woodpecker (`WOODPECKER_ORGS`).";
      };
    };

    secrets = {
      sopsFile = lib.mkOption {
        type = lib.types.path;
        default = config.sops.defaultSopsFile;
        defaultText = lib.literalExpression "config.sops.defaultSopsFile";
        description = "The sops file (decrypted by sops-nix at activation) that holds the Woodpecker secrets.";
      };

      agentSecret = lib.mkOption {
        type = lib.types.str;
        default = "woodpecker/agent-secret";
        description = "Key in {option}`sopsFile` of the shared server/agent secret (`WOODPECKER_AGENT_SECRET`).";
      };

      giteaClientSecret = lib.mkOption {
        type = lib.types.str;
        default = "woodpecker/gitea-client-secret";
        description = "Key in {option}`sopsFile` of the Gitea OAuth2 client secret (`WOODPECKER_GITEA_SECRET`).";
      };
    };

    agentName = lib.mkOption {
      type = lib.types.str;
      default = "local";
      description = "Name of the agent (its unit is `woodpecker-agent-<name>.service`).";
    };

    extraPackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [];
      description = "More packages on the agent's PATH, for recipes' own test executables.";
    };

    deployer = lib.mkOption {
      type = lib.types.enum ["native" "abra"];
      default = "native";
      description = ''
        How `ccci test` deploys recipes: `native` follows abra's conventions
        on `docker stack deploy` (see ../shared/ABRA.md), `abra` drives the
        real abra CLI ({option}`services.cc-ci.abraPackage`).
      '';
    };

    caCert = lib.mkOption {
      type = lib.types.str;
      default = "/etc/ssl/certs/ca-certificates.crt";
      description = ''
        PEM file of the CA(s) that issued the wildcard certificate: the only
        ones `ccci test`'s HTTPS checks and screenshots trust.
      '';
    };

    helperImage = lib.mkOption {
      type = lib.types.str;
      default = "busybox:1.36";
      description = ''
        Image for `ccci test`'s helper containers (volume witnesses; it needs
        `rm`). Pulled at boot by `cc-ci-images.service`; runs never pull.
      '';
    };

    resticImage = lib.mkOption {
      type = lib.types.str;
      default = "restic/restic:0.16.4";
      description = ''
        Image the backup/restore rung runs restic in (entrypoint `restic`,
        `rm` on PATH). Pulled at boot by `cc-ci-images.service`.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    sops.secrets.${sec.agentSecret}.sopsFile = sec.sopsFile;
    sops.secrets.${sec.giteaClientSecret}.sopsFile = sec.sopsFile;
    sops.templates."woodpecker-server.env" = {
      content = ''
        WOODPECKER_AGENT_SECRET=${config.sops.placeholder.${sec.agentSecret}}
        WOODPECKER_GITEA_SECRET=${config.sops.placeholder.${sec.giteaClientSecret}}
      '';
      restartUnits = ["woodpecker-server.service"];
    };
    sops.templates."woodpecker-agent.env" = {
      content = ''
        WOODPECKER_AGENT_SECRET=${config.sops.placeholder.${sec.agentSecret}}
      '';
      restartUnits = ["${agentUnit}.service"];
    };

    services.woodpecker-server = {
      enable = true;
      environment =
        {
          WOODPECKER_HOST = cfg.url;
          WOODPECKER_SERVER_ADDR = "${cfg.listenAddress}:${toString cfg.port}";
          WOODPECKER_GRPC_ADDR = "${cfg.listenAddress}:${toString cfg.grpcPort}";
          WOODPECKER_OPEN = "false";
          WOODPECKER_GITEA = "true";
          WOODPECKER_GITEA_URL = cfg.gitea.url;
          WOODPECKER_GITEA_CLIENT = cfg.gitea.clientId;
          WOODPECKER_DEFAULT_PIPELINE_TIMEOUT = toString cfg.buildTimeout;
          WOODPECKER_MAX_PIPELINE_TIMEOUT = toString cfg.buildTimeout;
        }
        // lib.optionalAttrs (cfg.admins != []) {WOODPECKER_ADMIN = lib.concatStringsSep "," cfg.admins;}
        // lib.optionalAttrs (cfg.gitea.orgs != []) {WOODPECKER_ORGS = lib.concatStringsSep "," cfg.gitea.orgs;};
      environmentFile = config.sops.templates."woodpecker-server.env".path;
    };

    services.woodpecker-agents.agents.${cfg.agentName} = {
      enable = true;
      environment = {
        WOODPECKER_SERVER = "${
          if cfg.listenAddress == "0.0.0.0"
          then "127.0.0.1"
          else cfg.listenAddress
        }:${toString cfg.grpcPort}";
        WOODPECKER_BACKEND = "local";
        WOODPECKER_MAX_WORKFLOWS = toString cfg.maxConcurrentTests;
        # What `ccci test` needs to know about this host.
        CCCI_DOMAIN = common.domain;
        CCCI_STATE_DIR = common.stateDir;
        CCCI_RESULTS_DIR = common.resultsDir;
        CCCI_DEPLOYER = cfg.deployer;
        CCCI_ABRA = "${common.abraPackage}/bin/abra";
        CCCI_DOCKER_CLI = "${config.virtualisation.docker.package}/bin/docker";
        CCCI_CA_CERT = cfg.caCert;
        CCCI_CHROMIUM = "${pkgs.chromium}/bin/chromium";
        CCCI_HELPER_IMAGE = cfg.helperImage;
        CCCI_RESTIC_IMAGE = cfg.resticImage;
      };
      environmentFile = [config.sops.templates."woodpecker-agent.env".path];
      extraGroups = ["docker"];
      path =
        [
          common.package
          common.abraPackage
          config.virtualisation.docker.package
          pkgs.chromium
          pkgs.git
          # The local backend clones repositories with this plugin.
          pkgs.woodpecker-plugin-git
          pkgs.bash
          pkgs.coreutils
        ]
        ++ cfg.extraPackages;
    };

    # The images runs use but never pull, present before the first run.
    systemd.services.cc-ci-images = {
      description = "cc-ci: pull the helper and restic images ccci test uses";
      after = ["docker.service" "network-online.target"];
      wants = ["network-online.target"];
      requires = ["docker.service"];
      wantedBy = ["multi-user.target"];
      path = [config.virtualisation.docker.package];
      script = ''
        docker pull ${lib.escapeShellArg cfg.helperImage}
        docker pull ${lib.escapeShellArg cfg.resticImage}
      '';
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
    };

    # The upstream agent unit is sandboxed for container backends. The local
    # backend runs `ccci test` here: it talks to Docker (the docker group must
    # map, so no private user namespace), runs headless Chromium (a JIT: no
    # MemoryDenyWriteExecute) and writes results. A fixed user owns them.
    systemd.services.${agentUnit} = {
      after = ["docker.service" "cc-ci-images.service"] ++ lib.optional proxyEnabled "traefik-deploy.service";
      wants = lib.optional proxyEnabled "traefik-deploy.service";
      serviceConfig = {
        DynamicUser = lib.mkForce false;
        User = common.user;
        Group = common.group;
        PrivateUsers = lib.mkForce false;
        MemoryDenyWriteExecute = lib.mkForce false;
        SystemCallFilter = lib.mkForce [];
        RestrictAddressFamilies = lib.mkForce ["AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK"];
        ReadWritePaths = [common.stateDir common.resultsDir];
        WorkingDirectory = common.stateDir;
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [cfg.port];
  };
}
