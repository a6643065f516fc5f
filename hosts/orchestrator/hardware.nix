# The machine under the orchestrator host: an Incus virtual machine, like
# the cc-ci host's. Replace with `nixos-generate-config --show-hardware-config`
# output on other hardware.
{modulesPath, ...}: {
  imports = ["${modulesPath}/virtualisation/incus-virtual-machine.nix"];
  nixpkgs.hostPlatform = "x86_64-linux";
}
