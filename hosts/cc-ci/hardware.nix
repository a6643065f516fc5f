# The machine under the cc-ci host: an Incus virtual machine (disk labelled
# `nixos`, UEFI, the Incus agent). On other hardware (a Hetzner server, say)
# replace this file with the output of `nixos-generate-config --show-hardware-config`
# and keep nixpkgs.hostPlatform; nothing else refers to it.
{modulesPath, ...}: {
  imports = ["${modulesPath}/virtualisation/incus-virtual-machine.nix"];
  nixpkgs.hostPlatform = "x86_64-linux";
}
