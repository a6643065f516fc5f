# VM test (a): a host with the swarm, proxy, CI and janitor concerns boots,
# every oneshot succeeds, Traefik serves the TEST wildcard certificate on
# 443, and a second activation re-runs the oneshots and changes nothing.
{
  pkgs,
  self,
}:
pkgs.testers.runNixOSTest {
  name = "cc-ci-host";

  nodes.machine = {
    imports = [self.nixosModules.default ./test-host.nix];
    services.cc-ci = {
      swarm.enable = true;
      proxy.enable = true;
      ci = {
        enable = true;
        url = "http://localhost:8000";
        gitea = {
          url = "http://gitea.invalid";
          clientId = "test-client";
        };
      };
      janitor.enable = true;
    };
    system.stateVersion = "25.11";
  };

  testScript = ''
    ${builtins.readFile ./checks.py}

    machine.wait_for_unit("multi-user.target")
    assert_converged(machine)
    machine.wait_for_unit("woodpecker-server.service")
    machine.wait_for_unit("woodpecker-agent-local.service")
    machine.succeed("systemctl start cc-ci-janitor.service")
    machine.succeed("test \"$(systemctl show -p Result --value cc-ci-janitor.service)\" = success")

    with subtest("a second activation converges again and changes nothing"):
        before = snapshot(machine)
        machine.succeed("/run/current-system/bin/switch-to-configuration test")
        wait_oneshots_settled(machine)
        assert_converged(machine)
        after = snapshot(machine)
        assert before == after, f"state changed:\n{before}\n---\n{after}"

    with subtest("no unit failed"):
        machine.succeed("test -z \"$(systemctl --failed --no-legend)\"")
  '';
}
