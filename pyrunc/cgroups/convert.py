"""v1 -> v2 value conversions, as runc (opencontainers/cgroups) makes them.

OCI resources are phrased in v1 terms; on a v2 host they are mapped:
cpu.shares -> cpu.weight, blkio weight -> io.weight (or io.bfq.weight
as is), memory.swap (memory+swap) -> memory.swap.max (swap alone).
"""
import math


def cpu_shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000].  runc's current
    mapping is quadratic in log2 so that the v1 default 1024 lands on the
    v2 default 100 (and 2 -> 1, 262144 -> 10000)."""
    if not shares:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    l = math.log2(shares)
    exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10 ** exponent))


def blkio_weight_to_io_weight(weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    if not weight:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def memory_swap_to_v2(swap, memory):
    """OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone.
    Returns the value for memory.swap.max (-1 = "max", None = leave it) or
    raises ValueError with runc's reason."""
    memory = memory or 0
    swap = swap or 0
    if memory == -1 and swap == 0:
        return -1  # unlimited memory: unlimited swap too
    if swap in (-1, 0):
        return None if swap == 0 else -1
    if memory == -1:
        return swap  # with unlimited memory, the limit is all swap
    if memory == 0:
        raise ValueError("unable to set swap limit without memory limit")
    if memory < 0:
        raise ValueError("invalid memory value: %d" % memory)
    if swap < memory:
        raise ValueError("memory+swap limit should be >= memory limit")
    return swap - memory


def v2_number(value):
    """-1 -> "max", otherwise the decimal string."""
    return "max" if value == -1 else str(value)
