# The source set of one check, from pkgs/sources.json (the one list both Nix
# and scripts/nix-check read): `sources "tests"` is a store path holding only
# the files that set names, at their repository-relative paths. A name the
# JSON lacks, or a path that does not exist, is an evaluation error naming it.
{lib}: name: let
  root = ../.;
  sets = lib.importJSON ./sources.json;
  paths =
    sets.${name}
    or (throw "pkgs/sources.json has no source set `${name}` (it has: ${lib.concatStringsSep ", " (lib.filter (n: !lib.hasPrefix "_" n) (lib.attrNames sets))})");
in
  lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions (map (p: root + "/${p}") paths);
  }
