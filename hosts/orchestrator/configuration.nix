# What the orchestrator host runs: the loop supervisor, nothing else.
{
  networking.hostName = "cc-ci-orchestrator";
  system.stateVersion = "25.11";
  time.timeZone = "UTC";

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  nix.settings.experimental-features = ["nix-command" "flakes"];

  services.cc-ci.loops = {
    enable = true;
    workspace = "/home/loops/workspace";
    watchdogInterval = "5min";
  };
}
