# VM test (a): a host with the swarm, proxy, CI, janitor and dashboard concerns boots,
# every oneshot succeeds, Buildbot's master and both worker slots run, Traefik serves the TEST wildcard certificate on
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
        url = "http://localhost:8010/";
        maxConcurrentTests = 2;
      };
      janitor.enable = true;
      dashboard = {
        enable = true;
        publicUrl = "https://dashboard.ci.test";
      };
    };
    system.stateVersion = "25.11";
  };

  testScript = ''
    ${builtins.readFile ./checks.py}

    machine.wait_for_unit("multi-user.target")
    assert_converged(machine)
    machine.wait_for_unit("buildbot-master.service")
    machine.wait_for_unit("buildbot-worker.service")
    machine.wait_for_unit("cc-ci-worker-2.service")
    # Both slots are connected to the master, and anonymous users may not force builds.
    machine.wait_until_succeeds(
        "test \"$(curl -sf http://127.0.0.1:8010/api/v2/workers | jq '[.workers[] | select(.connected_to != [])] | length')\" = 2",
        timeout=120,
    )
    machine.succeed(
        "test \"$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json'"
        " -d '{\"jsonrpc\":\"2.0\",\"method\":\"force\",\"id\":1,\"params\":{}}'"
        " http://127.0.0.1:8010/api/v2/forceschedulers/testme)\" = 403"
    )
    machine.succeed("systemctl start cc-ci-janitor.service")
    machine.succeed("test \"$(systemctl show -p Result --value cc-ci-janitor.service)\" = success")

    with subtest("the dashboard serves pages, unprivileged"):
        machine.wait_for_unit("cc-ci-dashboard.service")
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8082/ | grep -q '<h1>Recipes</h1>'", timeout=60)
        machine.succeed("curl -sf http://127.0.0.1:8082/recipe/none/badge.svg | grep -q unknown")
        machine.succeed("curl -sf http://127.0.0.1:8082/queue | grep -q 'Running builds'")
        # Not in the docker group: its process holds no docker gid.
        machine.succeed(
            "pid=$(systemctl show -p MainPID --value cc-ci-dashboard.service);"
            " gid=$(getent group docker | cut -d: -f3);"
            " ! grep -Eq \"^Groups:.*\\b$gid\\b\" /proc/$pid/status"
        )

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
