{
  description = "cc-ci: continuous integration for Co-op Cloud recipes (hosts, modules, packages, checks)";

  # Pinned in flake.lock; see docs/install.md ("Pins") for where each pin came from.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # The hosts' encrypted secrets: a folder (normally the operator's private
    # repository) with cc-ci.yaml, wildcard.sops.yaml and orchestrator.yaml.
    # The default is the TEST-ONLY folder of this repository, encrypted to the
    # public test age key, so that a clone evaluates and the VM tests boot the
    # real hosts; docs/install.md ("Your secrets") points it at yours.
    secrets = {
      url = "path:./tests/secrets";
      flake = false;
    };
  };

  outputs = inputs @ {
    self,
    nixpkgs,
    ...
  }: let
    inherit (nixpkgs) lib;
    systems = ["x86_64-linux" "aarch64-linux"];
    forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

    # One module per concern. None imports a secrets backend: they take
    # `*File` options, and each host chooses (ours: sops-nix).
    modules = {
      common = ./modules/common.nix;
      swarm = ./modules/swarm.nix;
      proxy = ./modules/proxy.nix;
      ci = ./modules/ci.nix;
      bridge = ./modules/bridge.nix;
      dashboard = ./modules/dashboard.nix;
      janitor = ./modules/janitor.nix;
      loops = ./modules/loops.nix;
    };
  in {
    nixosModules = modules // {default = {imports = builtins.attrValues modules;};};

    # `nixos-rebuild switch --flake .#cc-ci` (see docs/install.md). The hosts
    # get the flake's inputs (sops-nix, secrets) as the module argument `inputs`.
    nixosConfigurations = {
      cc-ci = lib.nixosSystem {
        specialArgs = {inherit inputs;};
        modules = [self.nixosModules.default ./hosts/cc-ci];
      };
      orchestrator = lib.nixosSystem {
        specialArgs = {inherit inputs;};
        modules = [self.nixosModules.default ./hosts/orchestrator];
      };
    };

    packages = forAllSystems (pkgs: let
      ours = import ./pkgs {inherit pkgs;};
    in
      ours // {default = ours.cc-ci;});

    # Everything `nix flake check` runs (scripts/nix-full-check runs it, with
    # the VM tests, where Nix can fetch nixpkgs). The Debian CI machine has
    # no nixpkgs: scripts/nix-check covers there what it can without
    # evaluating (parse, format, dead code, each check's source set, the
    # binaries the modules name, the toolchain) and names the rest skipped.
    checks = forAllSystems (pkgs: let
      ours = self.packages.${pkgs.stdenv.hostPlatform.system};
      rust = import ./pkgs/checks.nix {
        inherit pkgs;
        inherit (ours) cc-ci;
      };
    in
      rust
      // {
        # Nix formatting: the same formatter as `nix fmt` and CI.
        formatting = pkgs.runCommand "cc-ci-nix-formatting" {nativeBuildInputs = [ours.alejandra-lite];} ''
          alejandra-lite --check ${self} && touch $out
        '';
        deadnix = pkgs.runCommand "cc-ci-deadnix" {nativeBuildInputs = [pkgs.deadnix];} ''
          deadnix --fail ${self} && touch $out
        '';
        abra = ours.abra;
        vm-cc-ci = import ./tests/nixos/cc-ci.nix {inherit pkgs self inputs;};
        vm-rebuild = import ./tests/nixos/rebuild.nix {inherit pkgs self inputs;};
      });

    formatter = forAllSystems (pkgs: (import ./pkgs {inherit pkgs;}).alejandra-lite);

    devShells = forAllSystems (pkgs: {
      default = pkgs.mkShell {
        name = "cc-ci";
        packages = [
          pkgs.cargo
          pkgs.rustc
          pkgs.clippy
          pkgs.rustfmt
          pkgs.rust-analyzer
          (import ./pkgs {inherit pkgs;}).abra
          (import ./pkgs {inherit pkgs;}).alejandra-lite
          pkgs.deadnix
          pkgs.sops
          pkgs.age
          pkgs.ssh-to-age
          pkgs.docker-client
          pkgs.chromium
          pkgs.git
          pkgs.tmux
        ];
      };
    });
  };
}
