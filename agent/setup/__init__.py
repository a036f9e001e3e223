"""``edge-agent setup``: make this machine a gateway in one idempotent command.

System user and groups, state and config directories, the systemd unit, the example config, the
kernel cache warmed into the state directory as the service user, and a ``check`` of the config.
``--root DIR`` puts every path under DIR and runs no user-database or systemctl command (it lists
them instead): tests and image builders use it.
"""
