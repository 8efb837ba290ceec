"""What fresh memory costs on this machine: the first touch of 1 GiB in a new process, and again.

    python -m bench.first_touch

On the virtual machine these benchmarks ran on, a process pays about 1.5-2.5 s for every GiB it
touches for the first time (the host backs the guest's pages on demand and takes freed ones back),
against about 0.15 s to touch it again once the process has it. A run's peak memory is therefore
also a cost in time, and it differs between machines and between hours; ``bench.run`` records it
with every measurement (``machine.fresh_memory``).
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, time
import numpy as np
size = 2**30 // 8
start = time.perf_counter(); block = np.ones(size); first = time.perf_counter() - start
del block
start = time.perf_counter(); block = np.ones(size); again = time.perf_counter() - start
print(json.dumps({"first_touch_s_per_gib": round(first, 3), "again_s_per_gib": round(again, 3)}))
"""


def measure() -> dict[str, float]:
    """One new process: seconds to allocate and fill 1 GiB, the first time and the second."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout)


if __name__ == "__main__":
    print(json.dumps(measure()))
