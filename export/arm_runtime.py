"""An emulated aarch64 Python runtime, built once from the package registries, then offline.

Phones run a .tflite on ARM cores, where LiteRT's int8 kernels (XNNPACK's NEON, dot-product
and i8mm paths) are other code than the x86 ones every other number here comes from. This builds
what runs the same Python code on ARM under user-mode QEMU, without an ARM machine:

- `qemu-aarch64` from Debian's `qemu-user` (`QEMU_PACKAGE`, static, unpacked, not installed):
  bookworm's QEMU 7.2 shows the host's x86 /proc/cpuinfo to the guest and LiteRT's CPU
  detection crashes on it; QEMU 8.1 and later describe the emulated core (`-cpu`);
- Debian bookworm's arm64 Python 3.11 and the libraries it loads (`DEBIAN_ROOTS` and their
  dependencies, `apt-get download` + `dpkg -x` into one sysroot, no dpkg database touched);
- aarch64 wheels of numpy, Pillow and ai-edge-litert at the versions constraints.txt pins for
  x86 (`pip download --platform ...`), unzipped into one site folder, so an ARM/x86
  difference comes from the cores' kernels, not from another runtime version.

apt runs on its own state and sources under the cache folder; the system's apt and dpkg are
left as they are. The cache is reused while its `runtime.json` matches `RuntimeSpec`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from contract.commands import CommandError

REPO = Path(__file__).resolve().parent.parent
CACHE_ENV = "SKINLESION_ARM_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "skinlesion" / "aarch64-py311"
MANIFEST = "runtime.json"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Verified: 10.0.2 runs LiteRT on cortex-a53, cortex-a76 and max; bookworm's 7.2 segfaults.
QEMU_PACKAGE = "qemu-user:amd64=1:10.0.2+ds-2+deb13u1~bpo12+1"
DEBIAN_ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6")
# Programs in those packages' dependencies that Python never loads.
DEBIAN_SKIPPED = r"dpkg|install-info|tar|mailcap|perl.*|libperl.*"
WHEELS = ("numpy", "pillow", "ai-edge-litert")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
PYTHON_VERSION = "3.11"
SETUP_HINT = "python -m export.arm --setup"


class RuntimeMissing(CommandError, RuntimeError):
    """The emulated runtime is not set up (or cannot be); the message says how to set it up."""

    status = 1  # a check the input failed, not a usage error


@dataclass(frozen=True)
class RuntimeSpec:
    """What the cache must hold; a cache built for another spec is rebuilt."""

    qemu_package: str = QEMU_PACKAGE
    debian_release: str = "bookworm"
    debian_roots: tuple[str, ...] = DEBIAN_ROOTS
    wheels: tuple[str, ...] = WHEELS
    constraints_sha256: str = field(default_factory=lambda: _pinned_lines_sha256(REPO))

    def sources(self) -> str:
        """The apt sources: the release for arm64 Python, its backports for QEMU."""
        options = f"[arch=arm64,amd64 signed-by={DEBIAN_KEYRING}]"
        release = self.debian_release
        return (
            f"deb {options} http://deb.debian.org/debian {release} main\n"
            f"deb {options} http://deb.debian.org/debian {release}-updates main\n"
            f"deb {options} http://deb.debian.org/debian-security {release}-security main\n"
            f"deb {options} http://deb.debian.org/debian {release}-backports main\n"
        )


def _pinned_lines_sha256(repo: Path) -> str:
    """The hash of constraints.txt's pins: new pins, new wheels."""
    path = repo / "constraints.txt"
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class ArmRuntime:
    """A built cache folder: the emulator, the arm64 sysroot and the aarch64 site-packages."""

    root: Path

    @property
    def qemu(self) -> Path:
        return self.root / "qemu-aarch64"

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def site(self) -> Path:
        return self.root / "site"

    def manifest(self) -> dict:
        return json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))

    def command(self, cpu: str, args: list[str]) -> list[str]:
        """`python3.11 ARGS` on the emulated core `cpu` (a QEMU -cpu model)."""
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.sysroot), str(self.python), *args]

    def environment(self) -> dict[str, str]:
        """A clean environment: nothing of the x86 Python may leak into the ARM one."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{self.site}{os.pathsep}{REPO}",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def find_runtime(root: Path | None = None, spec: RuntimeSpec | None = None) -> ArmRuntime:
    """The built runtime, or RuntimeMissing saying how to build it (nothing is downloaded)."""
    runtime = ArmRuntime(root or cache_folder())
    want = asdict(spec or RuntimeSpec())
    try:
        built = runtime.manifest()["spec"]
    except (OSError, ValueError, KeyError):
        raise RuntimeMissing(
            f"no emulated aarch64 runtime in {runtime.root}; build it with {SETUP_HINT}"
        ) from None
    if json.loads(json.dumps(want)) != built:
        raise RuntimeMissing(f"{runtime.root} was built for another spec; run {SETUP_HINT}")
    for part in (runtime.qemu, runtime.python, runtime.site):
        if not part.exists():
            raise RuntimeMissing(f"{part} is missing; run {SETUP_HINT}")
    return runtime


def setup_runtime(root: Path | None = None, spec: RuntimeSpec | None = None) -> ArmRuntime:
    """Build the runtime into `root` unless it is already there (idempotent; then offline).

    Builds into a sibling folder and renames it into place, so an interrupted build leaves no
    half runtime behind.
    """
    spec = spec or RuntimeSpec()
    root = root or cache_folder()
    try:
        return find_runtime(root, spec)
    except RuntimeMissing:
        pass
    for tool in ("apt-get", "apt-cache", "dpkg"):
        if shutil.which(tool) is None:
            raise RuntimeMissing(f"{tool} not found: the runtime is built from Debian packages")
    staging = root.with_name(root.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    apt = _Apt(staging / "apt", spec)
    apt.update()
    debs = apt.download([spec.qemu_package], staging / "debs-qemu")
    _unpack_debs(debs, staging / "debs-qemu" / "unpacked")
    shutil.move(staging / "debs-qemu" / "unpacked" / "usr" / "bin" / "qemu-aarch64", staging)
    packages = apt.dependencies(spec.debian_roots)
    debs = apt.download(packages, staging / "debs")
    _unpack_debs(debs, staging / "sysroot")
    wheels = _download_wheels(spec.wheels, staging / "wheels")
    _unpack_wheels(wheels, staging / "site")
    manifest = {
        "spec": asdict(spec),
        "debian_packages": sorted(p.name for p in debs),
        "qemu_package": spec.qemu_package,
        "wheels": sorted(p.name for p in wheels),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for scratch in ("apt", "debs", "debs-qemu", "wheels"):
        shutil.rmtree(staging / scratch)
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return find_runtime(root, spec)


@dataclass(frozen=True)
class _Apt:
    """apt-get and apt-cache on a private state folder (native arm64, amd64 foreign)."""

    folder: Path
    spec: RuntimeSpec

    def _options(self) -> list[str]:
        settings = [
            ("Dir::State", self.folder / "state"),
            ("Dir::State::status", self.folder / "status"),
            ("Dir::Cache", self.folder / "cache"),
            ("Dir::Etc::SourceList", self.folder / "sources.list"),
            ("Dir::Etc::SourceParts", self.folder / "sources.list.d"),
            ("Dir::Etc::Preferences", self.folder / "preferences"),
            ("Dir::Etc::PreferencesParts", self.folder / "preferences.d"),
            ("APT::Architecture", "arm64"),
            ("APT::Architectures::", "arm64"),
            ("APT::Architectures::", "amd64"),
            ("APT::Sandbox::User", "root"),
        ]
        return [arg for key, value in settings for arg in ("-o", f"{key}={value}")]

    def _run(self, tool: str, args: list[str], cwd: Path | None = None) -> str:
        result = subprocess.run(
            [tool, *self._options(), *args], cwd=cwd, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeMissing(f"{tool} {' '.join(args[:3])} failed: {result.stderr.strip()}")
        return result.stdout

    def update(self) -> None:
        for sub in (
            "state/lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "preferences.d",
        ):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / "status").touch()
        (self.folder / "sources.list").write_text(self.spec.sources(), encoding="utf-8")
        self._run("apt-get", ["-qq", "update"])

    def dependencies(self, roots: tuple[str, ...]) -> list[str]:
        """The roots and everything they depend on (no recommends), less `DEBIAN_SKIPPED`."""
        flags = [
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
        ]
        listing = self._run("apt-cache", ["depends", *flags, *roots])
        names = {ln.strip() for ln in listing.splitlines() if ln and not ln[0].isspace()}
        return sorted(
            n
            for n in names
            if not n.startswith("<") and ":" not in n and not re.fullmatch(DEBIAN_SKIPPED, n)
        )

    def download(self, packages: list[str], folder: Path) -> list[Path]:
        folder.mkdir(parents=True)
        self._run("apt-get", ["-qq", "download", *packages], cwd=folder)
        return sorted(folder.glob("*.deb"))


def _unpack_debs(debs: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(into)], check=True)


def _download_wheels(requirements: tuple[str, ...], folder: Path) -> list[Path]:
    """aarch64 wheels of `requirements` and their dependencies, at constraints.txt's pins."""
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--only-binary=:all:",
        "--no-cache-dir",
        *platforms,
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "-c",
        str(REPO / "constraints.txt"),
        "-d",
        str(folder),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeMissing(f"pip download of aarch64 wheels failed: {result.stderr.strip()}")
    return sorted(folder.glob("*.whl"))


def _unpack_wheels(wheels: list[Path], into: Path) -> None:
    into.mkdir(parents=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(into)
