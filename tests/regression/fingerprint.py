"""What decides bitwise-equal floating point on CPU: the CPU model and instruction sets, and the versions of
jax, jaxlib and numpy."""
from __future__ import annotations

import hashlib
import platform
from pathlib import Path


def _cpu() -> tuple[str, str]:
    """(model name, sha of the flag list) from /proc/cpuinfo, or the platform's processor string."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor(), ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = " ".join(sorted(fields.get("flags", "").split()))
    return fields.get("model name", platform.processor()), hashlib.sha256(flags.encode()).hexdigest()[:12]


def fingerprint() -> dict:
    import jax
    import jaxlib
    import numpy

    model, flags = _cpu()
    return {"machine": platform.machine(), "cpu": model, "cpu_flags": flags, "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "numpy": numpy.__version__}
