# Shared by the VM tests: assertions on the converged cc-ci host.
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
