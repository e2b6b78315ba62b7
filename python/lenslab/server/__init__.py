"""The lenslab server: hosts models so that ``remote=True`` traces run on them.

Start it with ``lenslab serve`` (see cli.py). app.py is the HTTP API, hosts.py the per-model
queues and worker processes, worker.py and runner.py run one job, policy.py and guards.py are
the sandbox. Nothing here is imported by ``import lenslab``.
"""
