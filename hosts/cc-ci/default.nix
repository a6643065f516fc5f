# The cc-ci host: `nixos-rebuild switch --flake .#cc-ci`.
{
  imports = [
    ./hardware.nix
    ./configuration.nix
  ];
}
