"""The folder the web board may touch: every path a page reads or writes is resolved here first.

A browser page is a remote caller, so a path typed into it (a plan, a data file, a results folder) is refused
unless it resolves — symlinks followed — inside the workspace root. The one exception is `{data}`, the data
cache `adapt data ensure` provisions (read only, fixed content), which shipped plans name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from base import paths
from base.errors import AdaptError

DATA_PLACEHOLDER = "{data}"
STATE_DIR = ".adapt-ui"  # background jobs and their logs, inside the workspace


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "Workspace":
        folder = Path(root).expanduser().resolve()
        if not folder.is_dir():
            raise AdaptError("workspace folder not found", file=folder, hint="pass an existing folder to --workspace")
        return cls(folder)

    def resolve(self, raw: str | Path, *, field: str = "path", relative_to: Path | None = None) -> Path:
        """An absolute path inside the workspace for `raw` (relative to `relative_to`, else the root); an
        AdaptError naming `field` when it is blank or lies outside."""
        text = str(raw).strip()
        if not text:
            raise AdaptError("no path given", field=field)
        path = ((relative_to or self.root) / Path(text).expanduser()).resolve()
        if not path.is_relative_to(self.root):
            raise AdaptError(f"{text!r} is outside the workspace {self.root}", field=field,
                             hint="the board reads and writes only inside its workspace (`adapt ui --workspace DIR`)")
        return path

    def plan_file(self, raw: str | Path) -> Path:
        """A plan's path: inside, and a .yaml/.yml file, so saving a plan can never overwrite a data file."""
        path = self.resolve(raw, field="plan file")
        if path.suffix not in (".yaml", ".yml"):
            raise AdaptError(f"{str(raw).strip()!r} is not a .yaml file", field="plan file", hint="plans are YAML: e.g. plan.yaml")
        return path

    def readable(self, raw: str | Path, *, field: str = "path", relative_to: Path | None = None) -> Path:
        """Like `resolve`, but `{data}/...` (the provisioned data cache) is allowed too."""
        text = str(raw).strip()
        if text.startswith(DATA_PLACEHOLDER):
            data = paths.data_dir().resolve()
            path = Path(text.replace(DATA_PLACEHOLDER, str(data), 1)).resolve()
            if path.is_relative_to(data):
                return path
        return self.resolve(text, field=field, relative_to=relative_to)

    def relative(self, path: Path) -> str:
        """How a page shows a path: relative to the workspace root."""
        return Path(path).resolve().relative_to(self.root).as_posix() or "."

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def results_folders(self) -> list[str]:
        """Every folder under the workspace holding runs/*.json (what `adapt compare` writes), relative."""
        found = {run.parent.parent for run in self.root.rglob("runs/*.json") if STATE_DIR not in run.parts}
        return sorted(self.relative(folder) for folder in found)

    def plan_files(self) -> list[str]:
        """YAML files under the workspace that look like plans (they have `strategies:`)."""
        plans = []
        for file in sorted(self.root.rglob("*.yaml")):
            if STATE_DIR in file.parts or "artifacts" in file.parts:
                continue
            try:
                text = file.read_text(encoding="utf-8", errors="replace")[:20_000]
            except OSError:
                continue
            if "strategies:" in text:
                plans.append(self.relative(file))
        return plans
