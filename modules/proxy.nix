# The proxy in front of every test app: `cert-install` decrypts the
# operator's wildcard certificate (sops + age) into versioned swarm secrets,
# then `traefik-deploy` deploys the Co-op Cloud Traefik recipe at a pinned
# version in wildcard/file-provider mode (no ACME, no DNS token on the box).
# Both are oneshots that converge on every boot and every activation.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.proxy;
  common = config.services.cc-ci;
  ciEnabled = common.ci.enable or false;
  # `https://builds.ci.example.org/` -> `builds.ci.example.org`
  hostOf = url: let
    m = builtins.match "[a-zA-Z][a-zA-Z0-9+.-]*://([^/:?#]+).*" url;
  in
    if m == null
    then throw "services.cc-ci: `${url}` is not a URL with a host (a route needs one)"
    else builtins.head m;
  routes = lib.attrValues common.hostRoutes;
  routeArgs =
    lib.concatMap (r: [
      "--route"
      "${hostOf r.url}${lib.optionalString (r.pathPrefix != null) r.pathPrefix}=${toString r.port}"
    ])
    routes;
in {
  imports = [./common.nix ./swarm.nix];

  options.services.cc-ci.proxy = {
    enable = lib.mkEnableOption "Traefik with cc-ci's wildcard certificate on the swarm";

    certSopsFile = lib.mkOption {
      type = lib.types.path;
      example = lib.literalExpression "./secrets/wildcard.sops.yaml";
      description = ''
        The sops-encrypted file holding the wildcard certificate and key
        for `*.''${services.cc-ci.domain}` (layout: secrets/README.md). It is
        encrypted, so it may live in the Nix store.
      '';
    };

    ageKeyFile = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/sops-nix/key.txt";
      description = ''
        The age private key that decrypts {option}`certSopsFile`, as a path
        on the host (a string, so it never enters the Nix store). cert-install
        reads it through systemd's `LoadCredential`.
      '';
    };

    routesImage = lib.mkOption {
      type = lib.types.str;
      default = common.ci.helperImage or "busybox:1.36";
      defaultText = lib.literalExpression "config.services.cc-ci.ci.helperImage";
      description = ''
        Image of the one idle task that carries the host routes' labels
        (Traefik's swarm provider ignores a service with no running task).
        It must be on the host already: nothing is pulled.
      '';
    };

    traefik = {
      domain = lib.mkOption {
        type = lib.types.str;
        default = "traefik.${common.domain}";
        defaultText = lib.literalExpression ''"traefik.''${config.services.cc-ci.domain}"'';
        description = ''
          Domain of the Traefik app itself (its abra app name; the swarm
          stack and the certificate secrets are named after it).
        '';
      };

      recipeSource = lib.mkOption {
        type = lib.types.str;
        default = "https://git.coopcloud.tech/coop-cloud/traefik.git";
        description = "Git URL (or local path) of the Co-op Cloud Traefik recipe.";
      };

      version = lib.mkOption {
        type = lib.types.str;
        example = "4.0.0+v3.5.3";
        description = ''
          The Traefik recipe release to deploy (a tag of the recipe, as
          `abra recipe versions traefik` lists them). Pinned: a new version is
          a change to this repository, never a surprise at boot.
        '';
      };
    };
  };

  config = lib.mkIf cfg.enable {
    services.cc-ci.swarm.enable = true;
    services.cc-ci.convergeUnits = ["swarm-init.service" "cert-install.service" "traefik-deploy.service" "cc-ci-routes.service"];

    # Traefik's task reaches the host's services at the docker_gwbridge
    # gateway: open their ports on that interface, and only there.
    networking.firewall.interfaces.docker_gwbridge.allowedTCPPorts = map (r: r.port) routes;

    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.ageKeyFile && !(lib.hasPrefix builtins.storeDir cfg.ageKeyFile);
        message = "services.cc-ci.proxy.ageKeyFile must be an absolute path outside the Nix store (the age key never enters the store).";
      }
    ];

    systemd.services.cert-install = {
      description = "cc-ci: install the wildcard certificate as versioned swarm secrets";
      after = ["swarm-init.service"];
      requires = ["swarm-init.service"];
      wantedBy = ["multi-user.target"];
      path = [config.virtualisation.docker.package];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        LoadCredential = ["age-key:${cfg.ageKeyFile}"];
        ExecStart = lib.escapeShellArgs [
          "${common.package}/bin/cert-install"
          "--sops-file"
          "${cfg.certSopsFile}"
          "--age-key-file"
          "%d/age-key"
          "--domain"
          cfg.traefik.domain
        ];
        PrivateTmp = true;
        NoNewPrivileges = true;
      };
    };

    systemd.services.traefik-deploy = {
      description = "cc-ci: deploy the Traefik recipe in wildcard mode and wait until it serves";
      after = ["cert-install.service"];
      requires = ["cert-install.service"];
      wantedBy = ["multi-user.target"];
      path = [
        common.abraPackage
        config.virtualisation.docker.package
        pkgs.git
      ];
      environment = {
        # %S is /var/lib: the proxy's own abra directory, apart from the
        # per-run ones of the tests.
        ABRA_DIR = "%S/cc-ci/proxy/abra";
        HOME = "%S/cc-ci/proxy";
        CCCI_RESOLVE_IMAGE = common.resolveImage;
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        StateDirectory = "cc-ci/proxy";
        ExecStart = lib.escapeShellArgs [
          "${common.package}/bin/traefik-deploy"
          "--recipe-source"
          cfg.traefik.recipeSource
          "--version"
          cfg.traefik.version
          "--domain"
          cfg.traefik.domain
        ];
        # Deploying and waiting for convergence can take a while on a cold
        # image cache.
        TimeoutStartSec = "15min";
        PrivateTmp = true;
        NoNewPrivileges = true;
      };
    };

    # The host's own web services (Buildbot, the webhook, the dashboard) as
    # Traefik routes on the wildcard domain: a small stack whose labels name
    # each host and the host port (`loadbalancer.server.url`). No routes: the
    # stack is removed.
    systemd.services.cc-ci-routes = {
      description = "cc-ci: route the host's web services through Traefik";
      after = ["traefik-deploy.service"] ++ lib.optional ciEnabled "cc-ci-images.service";
      requires = ["traefik-deploy.service"];
      wants = lib.optional ciEnabled "cc-ci-images.service";
      wantedBy = ["multi-user.target"];
      path = [config.virtualisation.docker.package];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = lib.escapeShellArgs ([
            "${common.package}/bin/traefik-deploy"
            "routes"
            "--stack"
            "cc-ci-routes"
            "--image"
            cfg.routesImage
          ]
          ++ routeArgs);
        TimeoutStartSec = "5min";
        PrivateTmp = true;
        NoNewPrivileges = true;
      };
    };
  };
}
