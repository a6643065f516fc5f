# The CI engine: a Buildbot master (nixpkgs' services.buildbot-master) with
# cc-ci's own master.cfg (pkgs/buildbot/master.cfg: one builder, `ccci`, that
# checks a recipe out at a commit, runs `ccci test` on it and uploads the
# run's results to the results directory), and `maxConcurrentTests` worker
# slots on this host, each a unit of ours (`cc-ci-worker-<n>`) running cc-ci's
# worker.tac, whose short output buffer puts log lines in the web UI within
# about a second. Buildbot queues what does not fit, kills runs past their
# limits and shows live logs; the bridge (modules/bridge.nix) starts builds
# through its API.
#
# master.cfg reads everything from the JSON settings file written here
# (CCCI_BUILDBOT_SETTINGS): with `masterCfg` set, nixpkgs ignores the
# module's own port, pbPort, buildbotUrl and listenAddress (its description:
# "Other options in this configuration will be ignored"), so they are not set.
#
# Results have one owner, the master's user, which uploads them; the results
# group (services.cc-ci.resultsGroup) gives the bridge and the dashboard read
# access, and nothing else does.
#
# Secrets (the workers' and the bridge user's Buildbot passwords) are files
# named by options, whatever backend made them (the cc-ci host: sops-nix);
# they reach the units only through LoadCredential.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.ci;
  common = config.services.cc-ci;
  # `or`: a host may import this module without the proxy module.
  proxyEnabled = common.proxy.enable or false;
  python = pkgs.python3;
  workerPython = python.withPackages (p: [p.buildbot-worker]);
  workerTac = ../pkgs/buildbot/worker.tac;
  slots = lib.genList (i: i + 1) cfg.maxConcurrentTests;
  slotName = n: "slot-${toString n}";
  unitOf = n: "cc-ci-worker-${toString n}";
  masterUser = config.services.buildbot-master.user;
  masterCreds = "/run/credentials/buildbot-master.service";
  workerResults = "${common.stateDir}/worker-results";

  masterSettings = pkgs.writeText "ccci-master.json" (builtins.toJSON {
    title = "cc-ci";
    buildbot_url = cfg.url;
    www_port = "tcp:${toString cfg.port}:interface=${cfg.listenAddress}";
    pb_port = "tcp:${toString cfg.pbPort}:interface=127.0.0.1";
    workers =
      map (n: {
        name = slotName n;
        password_file = "${masterCreds}/worker-password";
      })
      slots;
    bridge_user = "bridge";
    bridge_password_file = "${masterCreds}/bridge-password";
    results_dir = common.resultsDir;
    worker_results_dir = workerResults;
    ccci = "${common.package}/bin/ccci";
    # The master's own tools, by absolute path (its PATH has none of ours).
    chmod = "${pkgs.coreutils}/bin/chmod";
    max_time_s = cfg.buildTimeout * 60;
    no_output_timeout_s = cfg.noOutputTimeout * 60;
    teardown_grace_s = 150;
  });

  workerSettings = n:
    pkgs.writeText "ccci-workers-${toString n}.json" (builtins.toJSON {
      master_host = "127.0.0.1";
      master_port = cfg.pbPort;
      basedir = "${common.stateDir}/buildbot";
      workers = [
        {
          name = slotName n;
          password_file = "/run/credentials/${unitOf n}.service/worker-password";
        }
      ];
      buffer_timeout_s = 0.5;
    });

  # What `ccci test` needs to know about this host.
  workerEnvironment = {
    CCCI_DOMAIN = common.domain;
    CCCI_STATE_DIR = common.stateDir;
    CCCI_DEPLOYER = cfg.deployer;
    CCCI_ABRA = "${common.abraPackage}/bin/abra";
    CCCI_DOCKER_CLI = "${config.virtualisation.docker.package}/bin/docker";
    CCCI_RESOLVE_IMAGE = common.resolveImage;
    CCCI_CA_CERT = cfg.caCert;
    CCCI_CHROMIUM = "${pkgs.chromium}/bin/chromium";
    CCCI_HELPER_IMAGE = cfg.helperImage;
    CCCI_RESTIC_IMAGE = cfg.resticImage;
    CCCI_SETTINGS_DIR = "${../tests/recipes}";
    PYTHONPATH = "${workerPython}/${python.sitePackages}";
  };
  workerPath =
    [
      common.package
      common.abraPackage
      config.virtualisation.docker.package
      pkgs.chromium
      # setpriv: Chromium started with a parent-death signal, so a killed
      # build leaves no browser behind.
      pkgs.util-linux
      pkgs.git
      pkgs.bash
      pkgs.coreutils
      pkgs.findutils
    ]
    ++ cfg.extraPackages;

  # One unit per slot: cc-ci's user (in the docker group), the slot's
  # worker.tac settings, its password as a credential.
  workerUnit = n: {
    description = "cc-ci: Buildbot worker ${slotName n}";
    wantedBy = ["multi-user.target"];
    after = ["docker.service" "cc-ci-images.service" "buildbot-master.service"] ++ lib.optional proxyEnabled "traefik-deploy.service";
    wants = lib.optional proxyEnabled "traefik-deploy.service";
    environment = workerEnvironment // {CCCI_WORKER_SETTINGS = "${workerSettings n}";};
    path = workerPath;
    serviceConfig = {
      User = common.user;
      Group = common.group;
      WorkingDirectory = "${common.stateDir}/buildbot";
      ExecStart = "${python.pkgs.twisted}/bin/twistd --nodaemon --pidfile= --logfile - --python ${workerTac}";
      LoadCredential = ["worker-password:${cfg.workerPasswordFile}"];
      Restart = "always";
      RestartSec = 5;
    };
  };
in {
  imports = [./common.nix];

  options.services.cc-ci.ci = {
    enable = lib.mkEnableOption "the Buildbot master and the worker slots that run cc-ci's tests";

    url = lib.mkOption {
      type = lib.types.str;
      example = "https://ci.ci.example.org/";
      description = ''
        The public URL of Buildbot's web interface, with a trailing `/`
        (`buildbotURL`). Commit statuses and PR comments link build pages
        (live logs) under it.
      '';
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default =
        if proxyEnabled
        then "0.0.0.0"
        else "127.0.0.1";
      defaultText = lib.literalExpression ''"0.0.0.0" with the proxy concern (Traefik reaches it over docker_gwbridge; the firewall opens the port on that interface only), else "127.0.0.1"'';
      description = "Address Buildbot's web interface and API bind to.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8010;
      description = "Port of Buildbot's web interface and API.";
    };

    pbPort = lib.mkOption {
      type = lib.types.port;
      default = 9989;
      description = ''
        Port workers connect to. It listens on 127.0.0.1 only: the slots of
        this host. Workers on other machines need it reachable (and their
        own identities in master.cfg's settings).
      '';
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
        How many `ccci test` runs this host runs at once: one Buildbot worker
        identity per slot (Buildbot runs one build per worker). Buildbot
        queues the rest. Each run deploys one app on the swarm, so size this
        to the host's memory and cores.
      '';
    };

    buildTimeout = lib.mkOption {
      type = lib.types.ints.positive;
      default = 60;
      description = ''
        Minutes of wall-clock time after which Buildbot stops a run
        (`maxTime` of the `ccci test` step): SIGTERM, so the app is torn
        down, then SIGKILL 150 s later.
      '';
    };

    noOutputTimeout = lib.mkOption {
      type = lib.types.ints.positive;
      default = 15;
      description = "Minutes without output after which Buildbot stops a run (`timeout` of the step).";
    };

    workerPasswordFile = lib.mkOption {
      type = lib.types.str;
      example = lib.literalExpression ''config.sops.secrets."buildbot/worker-password".path'';
      description = ''
        File (outside the Nix store) holding the password this host's worker
        slots log in to the master with. It reaches the master and the slots
        only as a systemd credential (`LoadCredential`). Any secrets backend
        works; the cc-ci host uses sops-nix.
      '';
    };

    bridgePasswordFile = lib.mkOption {
      type = lib.types.str;
      example = lib.literalExpression ''config.sops.secrets."buildbot/bridge-password".path'';
      description = ''
        File (outside the Nix store) holding the password of Buildbot's
        `bridge` user, who may force `ccci` builds, stop them and cancel
        their requests, and nothing else. The bridge logs in with it
        ({option}`services.cc-ci.bridge.buildbotPasswordFile`).
      '';
    };

    workerUnits = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      readOnly = true;
      default = map (n: "${unitOf n}.service") slots;
      defaultText = lib.literalExpression ''[ "cc-ci-worker-1.service" ... ]'';
      description = "The worker slots' units (read only): for a secrets backend's restart lists.";
    };

    extraPackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [];
      description = "More packages on the workers' PATH, for recipes' own test executables.";
    };

    deployer = lib.mkOption {
      type = lib.types.enum ["native" "abra"];
      default = "native";
      description = ''
        How `ccci test` deploys recipes: `native` follows abra's conventions
        on `docker stack deploy` (see docs/abra.md), `abra` drives the
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

    preloadImages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [];
      example = lib.literalExpression ''[ (pkgs.dockerTools.pullImage { imageName = "busybox"; finalImageTag = "1.36"; ... }) ]'';
      description = ''
        Image archives (`docker load` format, e.g. from `pkgs.dockerTools`)
        that `cc-ci-images.service` loads before it pulls: hosts without a
        registry (the VM tests) preload {option}`helperImage` and
        {option}`resticImage` this way.
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
    services.buildbot-master = {
      enable = true;
      masterCfg = ../pkgs/buildbot/master.cfg;
      # master.cfg runs its tools by absolute path (settings `chmod`, `ccci`).
      packages = [];
    };

    # The results: owned by the master (it uploads them), readable by the
    # results group alone; setgid, so every folder the master makes keeps
    # the group.
    systemd.tmpfiles.settings."11-cc-ci-ci" = {
      ${common.resultsDir}.d = {
        user = masterUser;
        group = common.resultsGroup;
        mode = "2750";
      };
      "${common.stateDir}/buildbot".d = {
        inherit (common) user group;
        mode = "0750";
      };
      ${workerResults}.d = {
        inherit (common) user group;
        mode = "0750";
      };
    };

    systemd.services =
      {
        buildbot-master = {
          environment.CCCI_BUILDBOT_SETTINGS = "${masterSettings}";
          serviceConfig.LoadCredential = [
            "worker-password:${cfg.workerPasswordFile}"
            "bridge-password:${cfg.bridgePasswordFile}"
          ];
        };

        # The images runs use but never pull, present before the first run:
        # loaded from {option}`preloadImages`, then pulled only when absent.
        # A failed pull (registry down) is retried every 30 s.
        cc-ci-images = {
          description = "cc-ci: load or pull the helper and restic images ccci test uses";
          after = ["docker.service" "network-online.target"];
          wants = ["network-online.target"];
          requires = ["docker.service"];
          wantedBy = ["multi-user.target"];
          path = [config.virtualisation.docker.package];
          script = ''
            ${lib.concatMapStrings (image: ''
                docker load --quiet <${image}
              '')
              cfg.preloadImages}
            for image in ${lib.escapeShellArgs [cfg.helperImage cfg.resticImage]}; do
              docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image"
            done
          '';
          unitConfig.StartLimitIntervalSec = 0;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            Restart = "on-failure";
            RestartSec = 30;
          };
        };
      }
      // lib.listToAttrs (map (n: lib.nameValuePair (unitOf n) (workerUnit n)) slots);

    # Traefik routes the public URL's host to the web UI and API.
    services.cc-ci.hostRoutes = lib.mkIf proxyEnabled {
      buildbot = {
        inherit (cfg) url port;
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [cfg.port];
  };
}
