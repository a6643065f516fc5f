# The orchestrator host: `nixos-rebuild switch --flake .#orchestrator`.
{
  imports = [
    ./hardware.nix
    ./configuration.nix
  ];
}
