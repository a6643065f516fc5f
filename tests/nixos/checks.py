# Shared by the VM tests: assertions on the converged cc-ci host.
import json

ONESHOTS = ["swarm-init.service", "cert-install.service", "traefik-deploy.service"]


def assert_converged(m):
    for unit in ONESHOTS:
        m.wait_for_unit(unit)
        m.succeed(f"test \"$(systemctl show -p Result --value {unit})\" = success")
    m.succeed("test \"$(docker info --format '{{.Swarm.LocalNodeState}}')\" = active")
    m.succeed("test \"$(docker network inspect proxy --format '{{.Driver}}')\" = overlay")
    # The wildcard certificate, verified against the TEST CA, for any name
    # under the wildcard: Traefik's own default certificate would fail here.
    m.wait_until_succeeds(
        "curl -sS -o /dev/null --cacert /etc/ssl/certs/ca-certificates.crt "
        "--resolve probe.ci.test:443:127.0.0.1 https://probe.ci.test/ -w '%{http_code}' | grep -x 404",
        timeout=300,
    )
    subject = m.succeed(
        "openssl s_client -connect 127.0.0.1:443 -servername probe.ci.test </dev/null 2>/dev/null"
        " | openssl x509 -noout -subject"
    )
    assert "*.ci.test" in subject, subject


def snapshot(m):
    """What a no-op activation must leave exactly as it was."""
    return m.succeed(
        "docker secret ls --format '{{.Name}}' | sort;"
        " echo --; docker config ls --format '{{.Name}}' | sort;"
        " echo --; docker network ls --format '{{.Name}} {{.ID}}' | sort;"
        " echo --; docker service ls --format '{{.Name}} {{.ID}} {{.Image}}' | sort;"
        " echo --; docker ps --format '{{.ID}} {{.Names}}' | sort"
    )


def wait_oneshots_settled(m):
    m.wait_until_succeeds(
        "! systemctl list-jobs --no-legend | grep -E 'swarm-init|cert-install|traefik-deploy'",
        timeout=600,
    )


def force_vm_site_build(m, run_id):
    """Force a real Buildbot build of the stand-in recipe vm-site at its
    newest release, as the bridge does (its Buildbot user, its password
    from sops-nix), wait for it, and return results.json as a dict."""
    sha = m.succeed(
        "git ls-remote /var/lib/ccci-test/recipes/vm-site.git 'refs/tags/1.1.0+1.36^{}' | cut -f1"
    ).strip()
    assert len(sha) == 40, sha
    body = json.dumps({
        "jsonrpc": "2.0", "method": "force", "id": 1,
        "params": {
            "builderNames": ["ccci"], "reason": "VM test",
            "clone_url": "file:///var/lib/ccci-test/recipes/vm-site.git",
            "recipe": "vm-site", "head_sha": sha, "run_id": run_id, "trigger": "manual",
        },
    })
    # Buildbot's login: basic auth on /auth/login sets the session cookie.
    m.succeed(
        "curl -s -o /dev/null -c /tmp/bb.cookies -u bridge:\"$(cat /run/secrets/buildbot/bridge-password)\""
        " http://127.0.0.1:8010/auth/login"
    )
    m.succeed(
        f"curl -sf -b /tmp/bb.cookies -H 'Content-Type: application/json' -d '{body}'"
        " http://127.0.0.1:8010/api/v2/forceschedulers/testme | jq -e '.result'"
    )
    # The build ends (complete) within the run's own limits.
    m.wait_until_succeeds(
        "curl -sf 'http://127.0.0.1:8010/api/v2/builds?order=-buildid&limit=1'"
        " | jq -e '.builds[0].complete == true'",
        timeout=1500,
    )
    print(m.succeed("curl -sf 'http://127.0.0.1:8010/api/v2/builds?order=-buildid&limit=1&property=*'"))
    path = f"/var/lib/cc-ci-results/vm-site/{run_id}/results.json"
    # Owned by the master, group cc-ci-results, no access for others.
    m.succeed(f"test \"$(stat -c '%U:%G %a' {path})\" = 'buildbot:cc-ci-results 640'")
    # Readable by a dynamic user holding the results group (what the bridge
    # and the dashboard are), and by nobody else.
    m.succeed(
        "systemd-run --wait --pipe -p DynamicUser=yes -p SupplementaryGroups=cc-ci-results"
        f" cat {path} >/dev/null"
    )
    m.fail(f"systemd-run --wait --pipe -p DynamicUser=yes cat {path} >/dev/null")
    return json.loads(m.succeed(f"cat {path}"))


def assert_routes(m):
    """Buildbot, the webhook and the dashboard answer through Traefik on
    their public hosts, with the wildcard certificate."""
    for url, expect in [
        ("https://builds.ci.test/api/v2/builders", "ccci"),
        ("https://dashboard.ci.test/", "<h1>Recipes</h1>"),
    ]:
        m.wait_until_succeeds(f"curl -sf {url} | grep -q '{expect}'", timeout=120)
    # The webhook route exists (the bridge answers, refusing an unsigned post),
    # and only /hook is routed on its host.
    m.wait_until_succeeds(
        "code=$(curl -s -o /dev/null -w '%{http_code}' -X POST https://hooks.ci.test/hook);"
        " [ \"$code\" != 404 ] && [ \"$code\" != 502 ]",
        timeout=120,
    )
    m.succeed("test \"$(curl -s -o /dev/null -w '%{http_code}' https://hooks.ci.test/status)\" = 404")
