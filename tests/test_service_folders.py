"""``service uninstall`` removes the empty folders the installs created, and never one that was there."""

from __future__ import annotations

from edgecnn.service.install import install_service, uninstall_service
from tests.conftest import MOBILENET


def test_last_uninstall_leaves_the_image_as_it_found_it(tmp_path, coral):
    root = tmp_path / "sd"
    (root / "etc" / "udev" / "rules.d").mkdir(parents=True)  # an image's own (empty) folders stay
    (root / "var" / "log").mkdir(parents=True)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    exe = "/usr/bin/true"
    install_service("door", model=MOBILENET, camera=0, device="edgetpu", root=root, executable=exe)
    install_service("hall", model=MOBILENET, camera=1, root=root, executable=exe)
    assert (root / "etc/systemd/system/edgecnn@.service").is_file()
    uninstall_service("door", root=root)
    assert (root / "etc/edgecnn/hall.toml").is_file()  # the other instance keeps its folders
    report = uninstall_service("hall", root=root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert str(root / "etc" / "systemd") in report.removed
