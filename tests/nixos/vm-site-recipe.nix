# TEST ONLY: `vm-site`, a stand-in recipe for the VM tests (which cannot
# fetch a real one): busybox httpd serving a page from a volume, two
# releases (so the upgrade rung runs), a healthcheck, backupbot labels (so
# backup and restore run), Traefik labels on the `proxy` network. Its image
# is built by Nix from nixpkgs' busybox and preloaded; nothing is pulled.
#
# Returns { image; repo; releases = [{version; tree}]; } for test-host.nix.
{pkgs}: let
  image = pkgs.dockerTools.buildLayeredImage {
    name = "ccci-test/httpd";
    tag = "nixpkgs";
    contents = [pkgs.busybox];
    config.Cmd = ["sh" "-c" "mkdir -p /srv && [ -e /srv/index.html ] || echo vm-site >/srv/index.html; exec httpd -f -p 80 -h /srv"];
  };
  release = version:
    pkgs.writeTextDir "compose.yml" ''
      version: "3.8"

      services:
        app:
          image: ccci-test/httpd:nixpkgs
          networks:
            - proxy
          volumes:
            - content:/srv
          deploy:
            update_config:
              failure_action: rollback
              order: start-first
            labels:
              - "traefik.enable=true"
              - "traefik.http.services.''${STACK_NAME}.loadbalancer.server.port=80"
              - "traefik.http.routers.''${STACK_NAME}.rule=Host(`''${DOMAIN}`)"
              - "traefik.http.routers.''${STACK_NAME}.entrypoints=web-secure"
              - "traefik.http.routers.''${STACK_NAME}.tls.certresolver=''${LETS_ENCRYPT_ENV}"
              - "coop-cloud.''${STACK_NAME}.version=${version}"
              - "backupbot.backup=true"
              - "backupbot.backup.path=/srv"
          healthcheck:
            test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
            interval: 2s
            timeout: 2s
            retries: 10
            start_period: 2s

      networks:
        proxy:
          external: true

      volumes:
        content:
    '';
  tree = version:
    pkgs.symlinkJoin {
      name = "vm-site-${version}";
      paths = [
        (release version)
        (pkgs.writeTextDir ".env.sample" ''
          TYPE=vm-site

          DOMAIN=vm-site.example.com

          LETS_ENCRYPT_ENV=production
        '')
        (pkgs.writeTextDir "README.md" ''
          # vm-site (TEST ONLY)

          A stand-in recipe for cc-ci's NixOS VM tests: busybox httpd on a volume.
        '')
      ];
    };
  versions = ["1.0.0+1.36" "1.1.0+1.36"];
in {
  inherit image;
  repo = "/var/lib/ccci-test/recipes/vm-site.git";
  releases =
    map (version: {
      inherit version;
      tree = tree version;
    })
    versions;
}
