# -*- python -*-
# cc-ci's Buildbot workers: one process hosting one Worker per test slot
# (Buildbot runs at most one build per worker identity, so N concurrent
# `ccci test` runs on a machine need N identities). Read by twistd:
#
#   twistd --nodaemon --python worker.tac     (or --pidfile/--logfile to daemonise)
#
# Settings come from the JSON file in $CCCI_WORKER_SETTINGS (default
# ccci-workers.json beside this file's working directory):
#
#   master_host, master_port     where the master's pb port listens
#   basedir                      each slot works in <basedir>/<name>/
#   workers                      [{"name": ..., "password_file": ...}]
#   buffer_timeout_s             how long a worker holds output before it
#                                sends it (Buildbot's default is 5 s; 0.5 s
#                                puts lines in the web UI within about 1 s)
#
# Passwords are read from files, never from argv.
import json
import os

from buildbot_worker.bot import Worker
from twisted.application import service

settings_path = os.environ.get("CCCI_WORKER_SETTINGS") or os.path.abspath("ccci-workers.json")
with open(settings_path) as f:
    S = json.load(f)

application = service.Application("buildbot-worker")
for w in S["workers"]:
    with open(w["password_file"]) as f:
        password = f.read().strip()
    if not password:
        raise RuntimeError(f"{settings_path}: worker {w['name']}: {w['password_file']} is empty")
    basedir = os.path.join(S["basedir"], w["name"])
    os.makedirs(basedir, exist_ok=True)
    s = Worker(S["master_host"], int(S["master_port"]), w["name"], password, basedir,
               keepalive=60, umask=0o022, maxdelay=10, allow_shutdown=None)
    s.bot.buffer_timeout = float(S.get("buffer_timeout_s", 0.5))
    s.setServiceParent(application)
