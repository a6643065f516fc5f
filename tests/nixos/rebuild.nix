# VM test (b): a fresh VM built from the flake's cc-ci host (everything but
# its hardware file, plus the TEST keys and stand-ins) reaches the same
# state as test (a): the rebuild path of docs/install.md, end to end.
{
  pkgs,
  self,
}:
pkgs.testers.runNixOSTest {
  name = "cc-ci-rebuild";

  nodes.machine = {lib, ...}: {
    imports = [
      self.nixosModules.default
      ../../hosts/cc-ci/configuration.nix
      ./test-host.nix
    ];
    # The host's real secrets files do not exist in a test; the test ones
    # from test-host.nix replace them.
    sops.defaultSopsFile = lib.mkForce ./secrets.sops.yaml;
    services.cc-ci = {
      domain = lib.mkForce "ci.test";
      proxy.certSopsFile = lib.mkForce ../keys/wildcard.sops.yaml;
      proxy.traefik.version = lib.mkForce "0.0.0+test";
    };
  };

  testScript = ''
    ${builtins.readFile ./checks.py}

    machine.wait_for_unit("multi-user.target")
    assert_converged(machine)
    for unit in ["buildbot-master.service", "buildbot-worker.service", "cc-ci-worker-2.service",
                 "cc-ci-dashboard.service", "cc-ci-bridge.service", "cc-ci-janitor.timer"]:
        machine.wait_for_unit(unit)
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:8082/ | grep -q '<h1>Recipes</h1>'", timeout=60)
    machine.succeed("test -z \"$(systemctl --failed --no-legend)\"")
  '';
}
