"""Package discovery for the mapped layout (everything else is in pyproject.toml).

`converters/`, `devices/` and `systemd/` are top-level folders installed as `edgecnn.converters`,
`edgecnn.devices` and `edgecnn.systemd`; their sub-packages (and edgecnn's own) are found here so a new
sub-package never has to be listed by hand.
"""

from setuptools import find_packages, setup

MAPPED = {
    "edgecnn": "edgecnn",
    "edgecnn.converters": "converters",
    "edgecnn.devices": "devices",
    "edgecnn.systemd": "systemd",
}

packages = []
for name, folder in MAPPED.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder) if not sub.startswith("edgecnn")]

setup(package_dir=MAPPED, packages=packages)
