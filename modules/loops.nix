# The orchestrator's loop supervisor (crates/loops): a `loops` user and
#
# - cc-ci-loops-tmux.service: the one tmux server (`tmux -L <socket> -D`, in
#   the foreground) that the agent loops, the watchdog, one-shot jobs and
#   the orchestrator's own session live in. It is the only unit whose cgroup
#   holds them: loops.toml names it (`tmux_server_unit`), so `loops` never
#   starts a server itself, and the short-lived units below only run tmux
#   clients. It holds the credentials (LoadCredential) the agents read.
# - cc-ci-loops-repos.service (oneshot, idempotent, run on every
#   activation): creates the origin repository (a local bare one, seeded
#   from `origin.upstream` or with one empty commit) and each agent's and
#   the orchestrator's clone when missing; never touches an existing one.
# - cc-ci-loops.service (oneshot, at boot): `loops boot`, which records the
#   boot in REBOOTS.md and resumes the loops and a wanted orchestrator.
# - cc-ci-loops-watchdog.timer: the idempotent `loops start --resume` every
#   `watchdogInterval`, in case the watchdog itself died.
#
# loops.toml is written from these options (keys: crates/loops/src/config.rs)
# to /etc/cc-ci/loops.toml; a running watchdog rereads it and restarts itself
# on a change. Prompts stay outside the store (paths in the workspace or a
# clone), editable without a rebuild. Secrets (the agents' API key, git
# credentials) come in as `*File` options and reach the agents only through
# systemd credentials: never in the store, in an environment file or in argv.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.cc-ci.loops;
  common = config.services.cc-ci;
  format = pkgs.formats.toml {};
  home = "/home/${cfg.user}";
  tmuxUnit = "cc-ci-loops-tmux.service";
  configFile = "/etc/cc-ci/loops.toml";
  loops = lib.escapeShellArgs ["${common.package}/bin/loops" "--config" configFile];

  # The backends the agents and the orchestrator use.
  kindOf = b:
    if b == null
    then cfg.backend
    else b;
  used =
    lib.unique (map (a: kindOf a.backend) (lib.attrValues cfg.agents)
      ++ lib.optional cfg.orchestrator.enable (kindOf cfg.orchestrator.backend));

  # An agent CLI behind a wrapper that puts the API key (a systemd credential
  # of the unit it runs under) into the CLI's environment, and nowhere else.
  wrap = kind: let
    b = cfg.backends.${kind};
    program =
      if b.package == null
      then kind
      else lib.getExe b.package;
  in
    pkgs.writeShellScript "loops-${kind}" ''
      key="''${CREDENTIALS_DIRECTORY:-/nonexistent}/agent-api-key"
      if [ -r "$key" ]; then
        ${cfg.apiKeyVariable}=$(cat "$key")
        export ${cfg.apiKeyVariable}
      fi
      exec ${program} "$@"
    '';

  # git: answers `get` from the credential file (git-credential-store
  # format); never stores or erases anything.
  credentialHelper = pkgs.writeShellScript "git-credential-loops" ''
    [ "$1" = get ] || exit 0
    f="''${CREDENTIALS_DIRECTORY:-/nonexistent}/git-credentials"
    [ -r "$f" ] || exit 0
    exec ${pkgs.git}/bin/git credential-store --file "$f" get
  '';
  knownHosts = pkgs.writeText "loops-known-hosts" (lib.concatLines cfg.git.knownHosts);
  gitConfig = pkgs.writeText "loops-gitconfig" (lib.generators.toGitINI ({
      user = {
        name = cfg.git.userName;
        email = cfg.git.userEmail;
      };
      init.defaultBranch = cfg.origin.branch;
    }
    // lib.optionalAttrs (cfg.git.credentialsFile != null) {
      credential.helper = "${credentialHelper}";
    }
    // lib.optionalAttrs (cfg.git.sshKeyFile != null) {
      core.sshCommand =
        "ssh -i \"$CREDENTIALS_DIRECTORY/git-ssh-key\" -o IdentitiesOnly=yes"
        + lib.optionalString (cfg.git.knownHosts != []) " -o UserKnownHostsFile=${knownHosts}";
    }));

  # A backend's command in loops.toml: the wrapper of the package for a
  # backend in use; the bare name otherwise (so an unused package is never
  # built or evaluated).
  command = kind:
    if lib.elem kind used
    then "${wrap kind}"
    else kind;

  # Every unit that runs `loops`, git or an agent gets these.
  credentials =
    lib.optional (cfg.apiKeyFile != null) "agent-api-key:${cfg.apiKeyFile}"
    ++ lib.optional (cfg.git.credentialsFile != null) "git-credentials:${cfg.git.credentialsFile}"
    ++ lib.optional (cfg.git.sshKeyFile != null) "git-ssh-key:${cfg.git.sshKeyFile}";
  unitEnvironment = {
    GIT_CONFIG_GLOBAL = "${gitConfig}";
    LOOPS_CONFIG = configFile;
    LANG = "C.UTF-8";
  };
  unitPath =
    [common.package pkgs.tmux pkgs.git pkgs.openssh pkgs.coreutils pkgs.bash pkgs.gnugrep pkgs.gnused pkgs.findutils pkgs.gawk pkgs.diffutils pkgs.procps]
    ++ lib.filter (p: p != null) (map (k: cfg.backends.${k}.package) used)
    ++ cfg.extraPackages
    # Last: what the host installs for everyone (environment.systemPackages).
    ++ ["/run/current-system/sw"];

  nonNull = lib.filterAttrs (_: v: v != null);
  settings =
    lib.recursiveUpdate (nonNull {
      inherit (cfg) workspace backend model;
      origin = cfg.origin.path;
      inherit (cfg.origin) branch;
      tmux_socket = cfg.socket;
      tmux_server_unit = tmuxUnit;
      watchdog = {
        heavy_check = cfg.watchdog.heavyCheck;
        fast_tick = cfg.watchdog.fastTick;
        stall_idle = cfg.watchdog.stallIdle;
        max_resumes = cfg.watchdog.maxResumes;
        max_takeovers = cfg.watchdog.maxTakeovers;
      };
      backends = {
        claude = nonNull {
          command = command "claude";
          inherit (cfg.backends.claude) args;
          remote_control = cfg.backends.claude.remoteControl;
        };
        opencode = nonNull {
          command = command "opencode";
          inherit (cfg.backends.opencode) args attach;
        };
      };
      agents = lib.mapAttrs (_: a: nonNull {inherit (a) prompt clone session backend model inbox;}) cfg.agents;
      handoff = nonNull {inherit (cfg.handoff) claim review;};
      phases = map (p: {inherit (p) name status prompts;}) cfg.phases;
      patterns = nonNull {
        inherit (cfg.patterns) fatal;
        usage_limit = cfg.patterns.usageLimit;
      };
      orchestrator =
        if cfg.orchestrator.enable
        then nonNull {inherit (cfg.orchestrator) prompt dir session backend model;}
        else null;
    })
    cfg.extraSettings;

  clones = lib.mapAttrsToList (_: a: a.clone) cfg.agents ++ lib.optional cfg.orchestrator.enable cfg.orchestrator.dir;
  # scripts/loops-repos: makes what is missing, touches nothing that exists.
  repos = lib.escapeShellArgs ([
      "${pkgs.writeShellScript "cc-ci-loops-repos" (builtins.readFile ../scripts/loops-repos)}"
      cfg.origin.path
      cfg.origin.branch
      (
        if cfg.origin.upstream == null
        then "-"
        else cfg.origin.upstream
      )
    ]
    ++ clones);

  absolute = p: lib.hasPrefix "/" p;
  backendType = lib.types.nullOr (lib.types.enum ["claude" "opencode"]);
in {
  imports = [./common.nix];

  options.services.cc-ci.loops = {
    enable = lib.mkEnableOption "the supervisor of long-running agent loops (orchestrator host)";

    user = lib.mkOption {
      type = lib.types.str;
      default = "loops";
      description = ''
        The user the loops run as (home `/home/<user>`): it owns the
        workspace, the origin and the clones, and runs the tmux server. The
        operators' keys ({option}`services.cc-ci.admins.sshKeys`) may log in
        as it, to attach to the sessions.
      '';
    };

    workspace = lib.mkOption {
      type = lib.types.str;
      default = "${home}/workspace";
      defaultText = lib.literalExpression ''"/home/''${config.services.cc-ci.loops.user}/workspace"'';
      description = "The supervisor's workspace: state, logs, REBOOTS.md and (by default) the prompts in `prompts/`.";
    };

    socket = lib.mkOption {
      type = lib.types.str;
      default = "loops";
      description = "The tmux socket name (`tmux -L`): attach with `tmux -L loops attach -t <session>` as the loops user.";
    };

    origin = {
      path = lib.mkOption {
        type = lib.types.str;
        default = "${home}/origin.git";
        defaultText = lib.literalExpression ''"/home/''${config.services.cc-ci.loops.user}/origin.git"'';
        description = ''
          The repository the agents push to and the supervisor watches. An
          absolute path: a bare repository created there once by
          cc-ci-loops-repos.service; a URL: used as it is (pushes then need
          {option}`git.credentialsFile` or {option}`git.sshKeyFile`).
        '';
      };
      upstream = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "https://git.coopcloud.tech/coop-cloud/cc-ci.git";
        description = ''
          The repository a new local origin starts as a copy of (`git clone
          --bare`), also added as the remote `upstream` of each clone; `null`:
          the new origin gets one empty commit. Never fetched again by the
          module: bringing the work upstream is the orchestrator's or the
          operator's job.
        '';
      };
      branch = lib.mkOption {
        type = lib.types.str;
        default = "main";
        description = "The branch whose commits and STATUS files count (and the clones check out).";
      };
    };

    clonesDir = lib.mkOption {
      type = lib.types.str;
      default = "${home}/clones";
      defaultText = lib.literalExpression ''"/home/''${config.services.cc-ci.loops.user}/clones"'';
      description = "Where the agents' clones (`<name>`) and the orchestrator's (`orchestrator`) are made by default.";
    };

    backend = lib.mkOption {
      type = lib.types.enum ["claude" "opencode"];
      default = "claude";
      description = "The default backend of the agents, the orchestrator and one-shot jobs.";
    };

    model = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "opus";
      description = "The default model (`--model`); `null`: the CLI's own default.";
    };

    backends = {
      claude = {
        package = lib.mkOption {
          type = lib.types.nullOr lib.types.package;
          default = pkgs.claude-code;
          defaultText = lib.literalExpression "pkgs.claude-code";
          description = ''
            Claude Code's CLI (`claude`); on the loops' PATH when an agent or
            the orchestrator uses it. It is unfree: the host allows it by
            name (`nixpkgs.config.allowUnfreePredicate`). `null`: `claude`
            from PATH.
          '';
        };
        args = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [];
          example = ["--permission-mode" "bypassPermissions"];
          description = "Arguments placed before the supervisor's own (`--model`, `--session-id`/`--resume`, the prompt).";
        };
        remoteControl = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          description = "A Remote Control name (`--remote-control <name>`), or `null`.";
        };
      };
      opencode = {
        package = lib.mkOption {
          type = lib.types.nullOr lib.types.package;
          default = pkgs.opencode;
          defaultText = lib.literalExpression "pkgs.opencode";
          description = "opencode's CLI; on the loops' PATH when an agent or the orchestrator uses it. `null`: `opencode` from PATH.";
        };
        args = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [];
          description = "Arguments placed after `opencode run`, before the supervisor's own.";
        };
        attach = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "http://127.0.0.1:4096";
          description = "An opencode server to attach to (`--attach`), or `null`.";
        };
      };
    };

    apiKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = lib.literalExpression ''config.sops.secrets."loops/agent-api-key".path'';
      description = ''
        File (outside the Nix store) holding the agents' API key. It reaches
        the tmux server as a systemd credential, and each agent CLI's
        wrapper puts it into {option}`apiKeyVariable` of the CLI's own
        environment. `null`: the CLIs use their own login (`claude /login`
        once as the loops user).
      '';
    };

    apiKeyVariable = lib.mkOption {
      type = lib.types.strMatching "[A-Z_][A-Z0-9_]*";
      default = "ANTHROPIC_API_KEY";
      description = "The environment variable the agent CLIs read the API key from.";
    };

    git = {
      userName = lib.mkOption {
        type = lib.types.str;
        default = "cc-ci loops";
        description = "The agents' git author and committer name.";
      };
      userEmail = lib.mkOption {
        type = lib.types.str;
        example = "loops@cc-ci.example.org";
        description = "The agents' git author and committer email.";
      };
      credentialsFile = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = lib.literalExpression ''config.sops.secrets."loops/git-credentials".path'';
        description = ''
          File (outside the Nix store) in git-credential-store format
          (`https://<user>:<token>@<host>`, one a line): git's HTTPS
          credentials for pushes and fetches (origin as a URL, `upstream`).
          Read through a credential helper that only answers `get`.
        '';
      };
      sshKeyFile = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "File (outside the Nix store) holding a private SSH key for git over SSH (`core.sshCommand`).";
      };
      knownHosts = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
        example = ["git.coopcloud.tech ssh-ed25519 AAAA..."];
        description = "known_hosts lines for git over SSH; empty: the loops user's own ~/.ssh/known_hosts.";
      };
    };

    watchdog = {
      heavyCheck = lib.mkOption {
        type = lib.types.ints.positive;
        default = 300;
        description = "Seconds between heavy checks (dead sessions, fatal panes, DONE, jobs, the orchestrator).";
      };
      fastTick = lib.mkOption {
        type = lib.types.ints.positive;
        default = 30;
        description = "Seconds between fast ticks (handoff pings, stall check).";
      };
      stallIdle = lib.mkOption {
        type = lib.types.ints.positive;
        default = 300;
        description = "Seconds a loop's pane may stay unchanged before it is restarted (never the orchestrator's).";
      };
      maxResumes = lib.mkOption {
        type = lib.types.ints.unsigned;
        default = 20;
        description = "Resumes a one-shot job gets before it hands off.";
      };
      maxTakeovers = lib.mkOption {
        type = lib.types.ints.unsigned;
        default = 1;
        description = "Fresh restarts the supervisor gives a job whose own watchdog gave up.";
      };
    };

    agents = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule ({name, ...}: {
        options = {
          prompt = lib.mkOption {
            type = lib.types.str;
            default = "${cfg.workspace}/prompts/${name}.md";
            defaultText = lib.literalExpression ''"''${workspace}/prompts/<name>.md"'';
            description = "The agent's default prompt file (absolute; not in the store: edit it without a rebuild).";
          };
          clone = lib.mkOption {
            type = lib.types.str;
            default = "${cfg.clonesDir}/${name}";
            defaultText = lib.literalExpression ''"''${clonesDir}/<name>"'';
            description = "The agent's working clone, made by cc-ci-loops-repos.service when missing.";
          };
          session = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = "tmux session name; `null`: the agent's name.";
          };
          backend = lib.mkOption {
            type = backendType;
            default = null;
            description = "Its backend; `null`: {option}`services.cc-ci.loops.backend`.";
          };
          model = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = "Its model; `null`: {option}`services.cc-ci.loops.model`.";
          };
          inbox = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = "File on origin whose change pings it; `null`: `INBOX/<name>.md`.";
          };
        };
      }));
      default = {
        builder = {};
        adversary = {};
      };
      description = "The long-lived agent loops, by name (letters, digits, `-`, `_`).";
    };

    handoff = {
      claim = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Agent pinged on `claim(` commits; `null`: `adversary` when there is one.";
      };
      review = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Agent pinged on `review(` commits; `null`: `builder` when there is one.";
      };
    };

    phases = lib.mkOption {
      type = lib.types.nonEmptyListOf (lib.types.submodule {
        options = {
          name = lib.mkOption {
            type = lib.types.str;
            description = "The phase's name.";
          };
          status = lib.mkOption {
            type = lib.types.str;
            default = "STATUS.md";
            description = "Path in the repository of the STATUS file whose real `## DONE` on origin ends the phase.";
          };
          prompts = lib.mkOption {
            type = lib.types.attrsOf lib.types.str;
            default = {};
            description = "Prompt file per agent name for this phase (absolute); others use their default prompt.";
          };
        };
      });
      default = [{name = "build";}];
      description = "The phases, in order.";
    };

    patterns = {
      fatal = lib.mkOption {
        type = lib.types.nullOr (lib.types.listOf lib.types.str);
        default = null;
        description = "Substrings marking a pane's fatal error; `null`: the supervisor's defaults.";
      };
      usageLimit = lib.mkOption {
        type = lib.types.nullOr (lib.types.listOf lib.types.str);
        default = null;
        description = "Substrings marking a usage-limit message; `null`: the supervisor's defaults.";
      };
    };

    orchestrator = {
      enable = lib.mkEnableOption "the orchestrator's own agent session (`loops orchestrator start|resume|status|stop`)";
      prompt = lib.mkOption {
        type = lib.types.str;
        default = "${cfg.workspace}/prompts/orchestrator.md";
        defaultText = lib.literalExpression ''"''${workspace}/prompts/orchestrator.md"'';
        description = "The prompt of a new orchestrator conversation (absolute, outside the store).";
      };
      dir = lib.mkOption {
        type = lib.types.str;
        default = "${cfg.clonesDir}/orchestrator";
        defaultText = lib.literalExpression ''"''${clonesDir}/orchestrator"'';
        description = "Its working folder, a clone made like the agents' (Claude keeps its conversations per folder).";
      };
      session = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "tmux session name; `null`: `orchestrator`.";
      };
      backend = lib.mkOption {
        type = backendType;
        default = null;
        description = "Its backend; `null`: {option}`services.cc-ci.loops.backend`.";
      };
      model = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Its model; `null`: {option}`services.cc-ci.loops.model`.";
      };
    };

    extraSettings = lib.mkOption {
      inherit (format) type;
      default = {};
      description = "More loops.toml keys, merged over the ones these options write (see crates/loops/src/config.rs).";
    };

    extraPackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [];
      example = lib.literalExpression "[ pkgs.cargo pkgs.rustc ]";
      description = "More packages on the PATH of the loops, the orchestrator and their jobs.";
    };

    watchdogInterval = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = "5min";
      description = "Time between two runs of the idempotent `loops start --resume`, which restarts a dead watchdog; `null` disables the timer.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = let
      paths =
        [cfg.workspace cfg.clonesDir]
        ++ lib.concatMap (a: [a.prompt a.clone]) (lib.attrValues cfg.agents)
        ++ lib.concatMap (p: lib.attrValues p.prompts) cfg.phases
        ++ lib.optionals cfg.orchestrator.enable [cfg.orchestrator.prompt cfg.orchestrator.dir];
    in [
      {
        assertion = lib.all absolute paths;
        message = "services.cc-ci.loops: these paths must be absolute (loops.toml is in the Nix store, where a relative path would point): ${toString (lib.filter (p: !absolute p) paths)}";
      }
      {
        assertion = cfg.agents != {};
        message = "services.cc-ci.loops.agents is empty: name at least one agent";
      }
      {
        assertion = lib.all (n: builtins.match "[A-Za-z0-9_-]+" n != null) (lib.attrNames cfg.agents);
        message = "services.cc-ci.loops.agents: names must be letters, digits, '-' or '_'";
      }
    ];

    users.users.${cfg.user} = {
      isNormalUser = true;
      inherit home;
      createHome = true;
      openssh.authorizedKeys.keys = common.admins.sshKeys;
    };

    environment.systemPackages = [common.package pkgs.tmux pkgs.git];
    # `loops status` works for whoever logs in.
    environment.variables.LOOPS_CONFIG = configFile;
    environment.etc."cc-ci/loops.toml".source = format.generate "loops.toml" settings;

    systemd.tmpfiles.settings."10-cc-ci-loops" = {
      ${cfg.workspace}.d = {
        inherit (cfg) user;
        group = "users";
        mode = "0750";
      };
      ${cfg.clonesDir}.d = {
        inherit (cfg) user;
        group = "users";
        mode = "0750";
      };
      # tmux's sockets live in /tmp/tmux-<uid>/: never aged out of /tmp.
      "/tmp/tmux-*".x = {};
    };

    # The tmux server. Its own unit, so that no agent ever lives in the
    # cgroup of a oneshot that merely ran `loops start` (before, the
    # watchdog timer's unit needed KillMode=process to let a tmux server it
    # started outlive it in its cgroup). A rebuild does not restart it (that
    # would kill every agent): a changed PATH or credential takes effect on
    # `systemctl restart cc-ci-loops-tmux cc-ci-loops` (the loops resume).
    systemd.services.cc-ci-loops-tmux = {
      description = "cc-ci: the tmux server of the agent loops, their watchdog and the orchestrator";
      after = ["network-online.target"];
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      path = unitPath;
      environment = unitEnvironment;
      restartIfChanged = false;
      serviceConfig = {
        User = cfg.user;
        Group = "users";
        WorkingDirectory = cfg.workspace;
        # -D: the server in the foreground (exit-empty off), the unit's main process.
        ExecStart = "${pkgs.tmux}/bin/tmux -L ${cfg.socket} -f ${pkgs.writeText "loops-tmux.conf" ''
          set -g history-limit 50000
        ''} -D";
        # Active only once the server answers, so that units ordered after
        # it (`loops boot`) find it.
        ExecStartPost = pkgs.writeShellScript "cc-ci-loops-tmux-ready" ''
          for _ in $(seq 300); do
            ${pkgs.tmux}/bin/tmux -L ${cfg.socket} list-sessions >/dev/null 2>&1 && exit 0
            sleep 0.1
          done
          echo "no tmux server answers on socket ${cfg.socket} after 30 s" >&2
          exit 1
        '';
        ExecStop = "${pkgs.tmux}/bin/tmux -L ${cfg.socket} kill-server";
        LoadCredential = credentials;
        Restart = "always";
        RestartSec = 5;
      };
    };

    systemd.services.cc-ci-loops-repos = {
      description = "cc-ci: the loops' origin repository and clones (made when missing)";
      after = ["network-online.target"];
      wants = ["network-online.target"];
      wantedBy = ["multi-user.target"];
      environment = unitEnvironment;
      path = [pkgs.git pkgs.openssh pkgs.coreutils];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = cfg.user;
        Group = "users";
        ExecStart = repos;
        LoadCredential = credentials;
      };
    };
    # Converges on every activation: a new agent gets its clone at once.
    services.cc-ci.convergeUnits = ["cc-ci-loops-repos.service"];

    systemd.services.cc-ci-loops = {
      description = "cc-ci: record this boot and resume the agent loops and the orchestrator";
      after = ["network-online.target" tmuxUnit "cc-ci-loops-repos.service"];
      wants = ["network-online.target" tmuxUnit];
      requires = ["cc-ci-loops-repos.service"];
      wantedBy = ["multi-user.target"];
      path = unitPath;
      environment = unitEnvironment;
      # A rebuild must not kill running loops; `loops boot` is for boots.
      restartIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = cfg.user;
        Group = "users";
        WorkingDirectory = cfg.workspace;
        ExecStart = "${loops} boot";
        ExecStop = "${loops} stop";
        LoadCredential = credentials;
        TimeoutStartSec = "5min";
      };
    };

    systemd.services.cc-ci-loops-watchdog = lib.mkIf (cfg.watchdogInterval != null) {
      description = "cc-ci: make sure the agent loops and their watchdog run";
      after = ["cc-ci-loops.service" tmuxUnit];
      path = unitPath;
      environment = unitEnvironment;
      serviceConfig = {
        Type = "oneshot";
        User = cfg.user;
        Group = "users";
        WorkingDirectory = cfg.workspace;
        # Only tmux clients run here (the server is cc-ci-loops-tmux's):
        # nothing is left in this unit's cgroup when it ends.
        ExecStart = "${loops} start --resume";
        LoadCredential = credentials;
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
