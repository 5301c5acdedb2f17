"""A stand-in for the ``pynvml`` module, for hosts without an NVIDIA GPU (this machine has none).

It answers the NVML calls that ``t9k_em_core.system_metrics.GpuProbe`` makes with fixed values in
NVML's own units and shapes (memory in bytes, power in milliwatts, clocks in MHz, throttle reasons
as a bit mask), typical of a busy A100-SXM4-80GB: the values are written down here, not read from a
device. ``tests/test_system_metrics.py`` tests the probe's logic with it, and
``benchmarks/system_metrics.py`` simulates 8 GPUs with it; both say so.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
GIB = 1 << 30


class NVMLError(Exception):
    """NVML's error base class."""


class NVMLError_NotSupported(NVMLError):
    """The device does not support the query."""


class RecordedNvml:
    """``pynvml`` over ``count`` simulated GPUs.

    Args:
        count: GPUs on the node.
        unsupported: query names (``'nvmlDeviceGetPowerUsage'``, ...) that raise
            ``NVMLError_NotSupported``, as on boards without that sensor.
        fail_after: ``{query name: n}``: the query raises ``NVMLError`` from its n+1-th call on,
            as when a driver goes away.
        throttle: the throttle-reason mask of each GPU (default 0: none).
    """

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVMLError = NVMLError

    def __init__(self, count: int = 8, unsupported: tuple = (),
                 fail_after: Optional[Dict[str, int]] = None,
                 throttle: Optional[List[int]] = None) -> None:
        self.count = count
        self.unsupported = set(unsupported)
        self.fail_after = dict(fail_after or {})
        self.throttle = list(throttle or [0] * count)
        self.calls: Dict[str, int] = {}
        self.initialised = 0

    def _query(self, name: str, answer: Callable[[], Any]) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.unsupported:
            raise NVMLError_NotSupported(name)
        if name in self.fail_after and self.calls[name] > self.fail_after[name]:
            raise NVMLError(f'{name}: GPU is lost')
        return answer()

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimpleNamespace:
        if not 0 <= index < self.count:
            raise NVMLError(f'invalid index {index}')
        return SimpleNamespace(index=index)

    def nvmlDeviceGetUUID(self, handle: SimpleNamespace) -> str:
        return f'GPU-{handle.index:08x}-1111-2222-3333-444455556666'

    def nvmlDeviceGetUtilizationRates(self, handle: SimpleNamespace) -> SimpleNamespace:
        return self._query('nvmlDeviceGetUtilizationRates',
                           lambda: SimpleNamespace(gpu=90 + handle.index, memory=40))

    def nvmlDeviceGetMemoryInfo(self, handle: SimpleNamespace) -> SimpleNamespace:
        return self._query('nvmlDeviceGetMemoryInfo', lambda: SimpleNamespace(
            total=80 * GIB, used=(10 + handle.index) * GIB, free=(70 - handle.index) * GIB))

    def nvmlDeviceGetPowerUsage(self, handle: SimpleNamespace) -> int:
        return self._query('nvmlDeviceGetPowerUsage', lambda: 312_500 + handle.index)  # mW

    def nvmlDeviceGetTemperature(self, handle: SimpleNamespace, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._query('nvmlDeviceGetTemperature', lambda: 61 + handle.index)

    def nvmlDeviceGetClockInfo(self, handle: SimpleNamespace, clock: int) -> int:
        assert clock == NVML_CLOCK_SM
        return self._query('nvmlDeviceGetClockInfo', lambda: 1410)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimpleNamespace) -> int:
        return self._query('nvmlDeviceGetCurrentClocksEventReasons',
                           lambda: self.throttle[handle.index])
