# VM test (b): a fresh VM built from the flake's cc-ci host (its
# configuration.nix with the flake's inputs, everything but its hardware
# file, the default TEST-ONLY secrets input, plus test-host.nix's stand-ins)
# reaches the same state as test (a), the bridge included: the rebuild path
# of docs/install.md, end to end.
{
  pkgs,
  self,
  inputs,
}:
pkgs.testers.runNixOSTest {
  name = "cc-ci-rebuild";

  # configuration.nix imports sops-nix from `inputs`, as nixosSystem gives it.
  node.specialArgs = {inherit inputs;};

  nodes.machine = {lib, ...}: {
    imports = [
      self.nixosModules.default
      ../../hosts/cc-ci/configuration.nix
      ./test-host.nix
    ];
    # The host's public names, moved under the test certificate's wildcard.
    services.cc-ci = {
      ci.url = lib.mkForce "https://builds.ci.test/";
      bridge = {
        publicUrl = lib.mkForce "https://hooks.ci.test";
        # No forge in a VM: the bridge polls nothing reachable and says so
        # on /status; it must still run, and /hook must be routed.
        giteaUrl = lib.mkForce "http://127.0.0.1:3000";
      };
      dashboard.publicUrl = lib.mkForce "https://dashboard.ci.test";
    };
  };

  testScript = ''
    ${builtins.readFile ./checks.py}

    machine.wait_for_unit("multi-user.target")
    assert_converged(machine)
    for unit in ["buildbot-master.service", "cc-ci-worker-1.service", "cc-ci-worker-2.service",
                 "cc-ci-dashboard.service", "cc-ci-bridge.service", "cc-ci-janitor.timer",
                 "cc-ci-routes.service"]:
        machine.wait_for_unit(unit)
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:8082/ | grep -q '<h1>Recipes</h1>'", timeout=60)
    assert_routes(machine)

    with subtest("a forced build of vm-site; the bridge's user and the dashboard read its results"):
        results = force_vm_site_build(machine, "d4e5f6")
        assert results["level"] >= 3, f"vm-site reached level {results['level']}"
        machine.wait_until_succeeds("curl -sf https://dashboard.ci.test/recipe/vm-site | grep -q d4e5f6", timeout=60)

    machine.succeed("test -z \"$(systemctl --failed --no-legend)\"")
  '';
}
