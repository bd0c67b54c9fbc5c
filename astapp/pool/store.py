"""An existing pool, opened: its meta, windows and embeddings (a float16 memmap, never loaded whole)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from astapp.pool.build import EMB_FILE, POOL_FILE, WINDOWS_FILE
from astapp.pool.embedder import Embedder, ModelSpec, model_spec
from astapp.pool.windows import PoolError, Window, read_table


class Pool:
    """A built pool folder (see `astapp.pool.build`)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta: dict[str, Any] = json.loads((self.folder / POOL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PoolError(f"{self.folder} is not a finished pool (no readable {POOL_FILE}); build it first with "
                            "`python -m astapp pool --data ... --model ... --output DIR`.") from e

    @cached_property
    def windows(self) -> list[Window]:
        return read_table(self.folder / WINDOWS_FILE)

    @cached_property
    def embeddings(self) -> np.ndarray:
        arr = np.load(self.folder / EMB_FILE, mmap_mode="r")
        if arr.shape != (self.meta["windows"], self.meta["dim"]):
            raise PoolError(f"The pool in {self.folder} is damaged (its embeddings do not match its windows); "
                            "build it again.")
        return arr

    def __len__(self) -> int:
        return int(self.meta["windows"])

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    def model_problem(self, selected: str) -> str | None:
        """None when `selected` is the pool's model (same weights), else the sentence saying what to do."""
        if not selected:
            return None
        try:
            same = model_spec(selected).identity == self.meta.get("model_identity")
        except Exception:  # noqa: BLE001 - an unloadable selection is simply not the pool's model
            same = False
        if same:
            return None
        return (f"This pool was embedded with {self.model!r}, not with the model now selected ({selected!r}): "
                "its search and proposals use the pool's model. Build the pool again with the selected model, or "
                "switch back to the pool's model.")

    def spec(self) -> ModelSpec:
        m = self.meta
        return ModelSpec(m["model"], int(m["max_length"]), float(m["mean"]), float(m["std"]), m["model_identity"])

    def embedder(self) -> Embedder:
        """The pool's model as it embedded the pool (int8 where the pool's pass was int8), for queries."""
        return Embedder(self.spec(), int8=self.meta.get("pass", {}).get("one_off_pass") == "int8")

    def failed(self) -> list[dict[str, str]]:
        return list(self.meta.get("failed", []))
