"""``edgecnn fleet``: deploy, observe and benchmark many devices through Ansible.

edgecnn does not orchestrate SSH itself: the playbooks under ``playbooks/`` (package data) do the work on
the devices, :mod:`edgecnn.fleet.runner` drives them with ansible-runner's Python API and turns its
per-host events into progress lines and a per-host summary. Needs the ``[fleet]`` extra on the operator's
machine only; devices need Python 3 (with ``venv``) and SSH, or any other Ansible connection.
"""
