"""The test cluster's image registry: which images exist, which tools each holds, and which user it runs as.

A kubelet runs a container from its image: the image decides which programs exist and, unless the
securityContext says otherwise, the user. :class:`Registry` models that for the test runtime
(:mod:`tests.cluster.runtime`): each image is a directory of symlinks (its ``PATH``, nothing else), made
from busybox applets and, for the capture image, the host's ``tcpdump``. An image the registry does not
hold cannot be pulled, as on a node that cannot reach it.

The images:

* the capture image (:data:`kubectl_netgen.capturing.plan.DEFAULT_IMAGE`, netshoot): a busybox userland
  plus tcpdump, running as root;
* ``busybox`` and ``alpine``: busybox applets only, running as root;
* :data:`NONROOT_IMAGE`: a busybox userland plus tcpdump whose image user is 65532 (a distroless-style
  "nonroot" image).

Needs the ``busybox`` binary (Debian package ``busybox``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kubectl_netgen.capturing.plan import DEFAULT_IMAGE

NONROOT_IMAGE = "registry.example/netgen/tcpdump-nonroot:1.0"


class ImageError(Exception):
    """The registry cannot make an image's tools (busybox or tcpdump missing on the host)."""


@dataclass(frozen=True)
class Reference:
    """An image reference split as a container runtime normalises it (``busybox`` -> docker.io/library)."""

    repository: str
    tag: str
    digest: str | None = None

    def __str__(self) -> str:
        """``repository:tag`` (the digest left out), as kubelet's pull messages name an image."""
        return f"{self.repository}:{self.tag}"


def parse_reference(reference: str) -> Reference:
    """Normalise ``reference`` (``busybox``, ``busybox:1.37``, ``host/repo:tag@sha256:...``)."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = "latest"
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        if len(parts) == 1:
            parts = ["library", *parts]
        parts = ["docker.io", *parts]
    return Reference("/".join(parts), tag, digest or None)


@dataclass(frozen=True)
class Image:
    """One image of the registry."""

    reference: str
    """Its name as a pod spec may spell it; any tag in :attr:`tags` matches."""
    tags: frozenset[str]
    host_tools: tuple[str, ...] = ()
    """Programs of the host the image holds (``tcpdump``), besides every busybox applet."""
    user: int = 0
    """The image's user (``USER`` of its config), used unless ``runAsUser`` is set."""
    group: int = 0

    @property
    def repository(self) -> str:
        """The normalised repository."""
        return parse_reference(self.reference).repository


CAPTURE_IMAGE = Image(DEFAULT_IMAGE, frozenset({parse_reference(DEFAULT_IMAGE).tag}), ("tcpdump",))
DEFAULT_IMAGES = (
    CAPTURE_IMAGE,
    Image("busybox", frozenset({"latest", "1.36", "1.37", "stable"})),
    Image("alpine", frozenset({"latest", "3.19", "3.20"})),
    Image(NONROOT_IMAGE, frozenset({"1.0"}), ("tcpdump",), user=65532, group=65532),
)


class Registry:
    """Images by reference, each materialised on first use as a directory of symlinks (its whole ``PATH``)."""

    def __init__(self, images: tuple[Image, ...] = DEFAULT_IMAGES) -> None:
        """Hold ``images``; nothing is made on disk until :meth:`path_of` is asked."""
        self._images = {i.repository: i for i in images}
        self._dirs: dict[str, Path] = {}
        self._root: Path | None = None
        self._lock = threading.Lock()

    def add(self, image: Image) -> None:
        """Make ``image`` pullable (replacing one of the same repository)."""
        with self._lock:
            self._images[image.repository] = image
            self._dirs.pop(image.repository, None)

    def find(self, reference: str) -> Image | None:
        """The image ``reference`` names (repository and tag), ``None`` if the registry does not have it."""
        ref = parse_reference(reference)
        image = self._images.get(ref.repository)
        return image if image is not None and ref.tag in image.tags else None

    def path_of(self, image: Image) -> Path:
        """The directory of ``image``'s programs (made once; readable by every user).

        Raises:
            ImageError: busybox or one of the image's host tools is not installed.
        """
        with self._lock:
            made = self._dirs.get(image.repository)
            if made is not None:
                return made
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="netgen-images-"))
                self._root.chmod(0o755)
            directory = self._root / str(len(self._dirs))
            directory.mkdir(mode=0o755)
            busybox = shutil.which("busybox")
            if busybox is None:
                raise ImageError("the test runtime needs busybox for its images (apt-get install busybox)")
            listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True, timeout=10)
            for applet in listed.stdout.split():
                if "/" not in applet:
                    (directory / applet).symlink_to(busybox)
            for tool in image.host_tools:
                found = shutil.which(tool)
                if found is None:
                    raise ImageError(f"the image {image.reference} needs {tool} on the host")
                target = directory / tool
                target.unlink(missing_ok=True)
                target.symlink_to(found)
            self._dirs[image.repository] = directory
            return directory

    def close(self) -> None:
        """Remove the images' directories."""
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
            self._root, self._dirs = None, {}
