# abra, the Co-op Cloud command-line tool, pinned to one release.
#
# Version and source hash are the ones nixpkgs itself pins for this release
# (NixOS/nixpkgs, pkgs/by-name/ab/abra/package.nix at commit
# a037d3340fa87b37345636e52eb01fea69f3c92c); abra vendors its Go modules, so
# there is no vendorHash. The same version is pinned for the Debian test
# machines in scripts/versions.env (ABRA_VERSION); bump both together.
{
  lib,
  buildGoModule,
  fetchFromGitea,
}:
buildGoModule (finalAttrs: {
  pname = "abra";
  version = "0.11.0-beta";

  src = fetchFromGitea {
    domain = "git.coopcloud.tech";
    owner = "toolshed";
    repo = "abra";
    rev = finalAttrs.version;
    hash = "sha256-m0x5uC6E5p3Yj/oFw37s1e0biaF8Qh3hP4d9jew8mlA=";
  };
  vendorHash = null;

  subPackages = ["cmd/abra"];
  ldflags = [
    "-s"
    "-w"
    "-X main.Version=${finalAttrs.version}"
  ];

  meta = {
    description = "The Co-op Cloud command-line tool";
    homepage = "https://docs.coopcloud.tech/abra";
    license = lib.licenses.gpl3Plus;
    mainProgram = "abra";
    platforms = lib.platforms.unix;
  };
})
