"""Settings read from the environment (numbers and on/off flags) and from the process launcher (rank, world).

Malformed values fall back to the default instead of failing: a typo in a deployment's environment must
not keep the app from starting.
"""

from __future__ import annotations

import os
from typing import Any


def env_number(name: str, default: float, kind: type = float) -> Any:
    """A numeric setting from the environment; unset, blank or malformed gives the default."""
    raw = os.environ.get(name, "").strip()
    try:
        return kind(raw) if raw else default
    except ValueError:
        return default


def env_int(name: str, default: int) -> int:
    return env_number(name, default, int)


def env_float(name: str, default: float) -> float:
    return env_number(name, default, float)


def env_flag(name: str) -> bool:
    """An on/off setting from the environment: 1, true, yes or on (any case) mean on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def launch_rank() -> int:
    """This process's rank under torchrun / accelerate launch / MPI (0 when not launched)."""
    for var in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var])
    return 0


def launch_world() -> int:
    """Processes the launcher started (1 when not launched)."""
    for var in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var])
    return 1
