# VM test (a): a host with every cc-ci concern but the bridge, from the
# modules alone: it boots, every oneshot succeeds, Buildbot's master and both
# worker slots run, Traefik serves the TEST wildcard certificate on 443 and
# routes Buildbot and the dashboard on their hosts, a forced Buildbot build
# of the stand-in recipe vm-site runs `ccci test` to its level with results
# the dashboard serves, and a second activation re-runs the oneshots and
# changes nothing.
{
  pkgs,
  self,
  inputs,
}:
pkgs.testers.runNixOSTest {
  name = "cc-ci-host";

  nodes.machine = {config, ...}: {
    imports = [
      self.nixosModules.default
      inputs.sops-nix.nixosModules.sops
      ./test-host.nix
    ];
    sops = {
      defaultSopsFile = "${inputs.secrets}/cc-ci.yaml";
      age.keyFile = "/var/lib/sops-nix/key.txt";
      age.sshKeyPaths = [];
      gnupg.sshKeyPaths = [];
      secrets."buildbot/worker-password" = {};
      secrets."buildbot/bridge-password" = {};
    };
    services.cc-ci = {
      swarm.enable = true;
      proxy = {
        enable = true;
        certSopsFile = "${inputs.secrets}/wildcard.sops.yaml";
      };
      ci = {
        enable = true;
        url = "https://builds.ci.test/";
        maxConcurrentTests = 2;
        workerPasswordFile = config.sops.secrets."buildbot/worker-password".path;
        bridgePasswordFile = config.sops.secrets."buildbot/bridge-password".path;
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
    machine.wait_for_unit("cc-ci-worker-1.service")
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

    with subtest("Buildbot and the dashboard are routed through Traefik"):
        machine.wait_for_unit("cc-ci-routes.service")
        for url, expect in [("https://builds.ci.test/api/v2/builders", "ccci"),
                            ("https://dashboard.ci.test/", "<h1>Recipes</h1>")]:
            machine.wait_until_succeeds(f"curl -sf {url} | grep -q '{expect}'", timeout=120)

    with subtest("a forced build of vm-site reaches its level; the dashboard shows it"):
        results = force_vm_site_build(machine, "a1b2c3")
        print(json.dumps(results, indent=2))
        assert results["level"] >= 3, f"vm-site reached level {results['level']}"
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8082/recipe/vm-site | grep -q a1b2c3", timeout=60)

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
