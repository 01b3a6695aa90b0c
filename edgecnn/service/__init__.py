"""``edgecnn service``: install ``edgecnn run`` as a hardened systemd service (``edgecnn@NAME.service``).

- :mod:`~edgecnn.service.unit` renders the template unit shipped in ``edgecnn.systemd`` and the
  per-instance drop-in;
- :mod:`~edgecnn.service.layout` says where every file goes, under ``/`` or an image root (``--root``);
- :mod:`~edgecnn.service.systemctl` is the one place that runs ``systemctl`` (argv lists, exit codes checked);
- :mod:`~edgecnn.service.install` installs, uninstalls and lists instances;
- :mod:`~edgecnn.service.status` asks systemd and the instance's ``/healthz`` how it is doing.
"""
