"""System metrics: how the training used its GPUs and host, sampled into its Runs.

One daemon thread per process samples for every open Run that asked for it
(``create_run(system_metrics=...)``) and logs each sample through the Run's
:class:`~t9k_em_core.metrics.MetricWriter` as metric type :data:`METRIC_TYPE`, step = the
sample index, no epoch: ``metrics/system.yaml`` is an ordinary metric file. The first sample is
taken when the Run is created, the last one when it ends.

Two optional probes read the numbers (the ``system`` extra installs both):

- :class:`HostProbe` over ``psutil``: CPU and memory of the host and of the training's process
  tree, disk and network throughput;
- :class:`GpuProbe` over NVML (``nvidia-ml-py``, imported as ``pynvml``; no ``nvidia-smi``
  process): utilisation, memory, power, temperature, SM clock and throttle reasons of each GPU
  the job sees (``CUDA_VISIBLE_DEVICES``, else all).

A probe that is missing or fails gives one warning on stderr and is dropped; the training never
sees an exception. The fields, their units and the measured cost are in docs/system-metrics.md.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from t9k_em_core import metric_file, run_files

METRIC_TYPE = 'system'
"""Metric type of the samples (``metrics/system.yaml``)."""

DEFAULT_INTERVAL = 1.0
"""Seconds between two samples when ``system_metrics=True``."""

MIN_INTERVAL = 0.1
"""The shortest interval accepted."""

TREE_REFRESH = 10.0
"""Seconds between two searches for the processes of the training's tree: listing a process's
descendants reads every process of the host (ms), reading known ones costs µs."""

GPU_FIELD = re.compile(r'gpu(\d+)_(\w+)')
"""A per-GPU field of a sample, ``gpu<k>_<quantity>`` (e.g. ``gpu0_util_percent``)."""

GPU_UTIL = 'util_percent'
"""The quantity of the GPU utilisation fields."""

GPU_MEMORY_USED = 'memory_used_bytes'
"""The quantity of the GPU memory fields."""

FINAL_SAMPLE_WAIT = 2.0
"""Seconds ``Run.finish`` waits for the probes (busy on the sampler thread) for its last sample."""

RATE_FIELDS = {
    # cumulative counter read by a probe → the sample field of its rate (counter units per second)
    'disk_read_bytes': 'disk_read_bytes_per_s',
    'disk_write_bytes': 'disk_write_bytes_per_s',
    'net_recv_bytes': 'net_recv_bytes_per_s',
    'net_sent_bytes': 'net_sent_bytes_per_s',
}


ENV = 'EM_SYSTEM_METRICS'
"""Environment variable read when ``system_metrics`` is not given: ``0``/``false``/``off`` turns
sampling off, ``1``/``true``/``on`` is :data:`DEFAULT_INTERVAL`, another number is seconds."""


def interval_of(setting: Any = None) -> Optional[float]:
    """The sampling interval in seconds that ``system_metrics=setting`` asks for, or ``None``
    for off: ``True`` is :data:`DEFAULT_INTERVAL`, ``False`` is off, a number is seconds (at least
    :data:`MIN_INTERVAL`), ``None`` is what :data:`ENV` says (by default
    :data:`DEFAULT_INTERVAL`).

    Raises:
        TypeError: ``setting`` is not a bool or a number.
        ValueError: the number (or :data:`ENV`) is below :data:`MIN_INTERVAL` or not a number.
    """
    if setting is None:
        text = os.environ.get(ENV, '').strip().lower()
        if text in ('', '1', 'true', 'on', 'yes'):
            return DEFAULT_INTERVAL
        if text in ('0', 'false', 'off', 'no'):
            return None
        try:
            setting = float(text)
        except ValueError:
            raise ValueError(f'{ENV} must be 0, 1, true, false or an interval in seconds, got '
                             f'{os.environ[ENV]!r}') from None
    if setting is False:
        return None
    if setting is True:
        return DEFAULT_INTERVAL
    if not isinstance(setting, (int, float)):
        raise TypeError('system_metrics must be True, False or an interval in seconds, got '
                        f'{type(setting).__name__}: {setting!r}')
    seconds = float(setting)
    if not MIN_INTERVAL <= seconds < float('inf'):
        raise ValueError(f'system_metrics interval must be at least {MIN_INTERVAL} s, got {setting!r}')
    return seconds


def _warn(text: str) -> None:
    print(f'EM WARNING: system metrics: {text}', file=sys.stderr)


# --- probes -----------------------------------------------------------------------------------

class Reading:
    """One reading of every probe: ``gauges`` are sample fields as they are, ``counters``
    (cumulative) become rates between two readings."""

    __slots__ = ('time', 'gauges', 'counters')

    def __init__(self, now: float) -> None:
        self.time = now
        self.gauges: Dict[str, float] = {}
        self.counters: Dict[str, float] = {}


class HostProbe:
    """Host and process-tree numbers through ``psutil``.

    Gauges: ``memory_used_bytes`` (total - available), ``memory_percent``, ``process_rss_bytes``
    (sum of the RSS of the tree: this process and its descendants). Counters: CPU seconds of the
    host (busy and all), of the tree, disk bytes read and written, network bytes received and
    sent (loopback excluded).
    """

    def __init__(self, psutil: Any, pid: Optional[int] = None) -> None:
        self._psutil = psutil
        self._root = psutil.Process(pid or os.getpid())
        self._tree: List[Any] = [self._root]
        self._tree_at = float('-inf')
        self._tree_cpu: Dict[int, float] = {}  # pid → CPU seconds counted of it
        self._tree_cpu_total = 0.0  # never decreases when a process of the tree ends

    def read(self, reading: Reading) -> None:
        ps = self._psutil
        gauges, counters = reading.gauges, reading.counters
        memory = ps.virtual_memory()
        gauges['memory_used_bytes'] = float(memory.total - memory.available)
        gauges['memory_percent'] = float(memory.percent)
        rss, cpu = self._read_tree(reading.time)
        gauges['process_rss_bytes'] = rss
        counters['process_cpu_seconds'] = cpu
        times = ps.cpu_times()
        idle = times.idle + getattr(times, 'iowait', 0.0)
        total = sum(times)
        counters['cpu_busy_seconds'] = total - idle
        counters['cpu_all_seconds'] = total
        # nowrap=False: psutil's bookkeeping of counters that wrap costs a third of the call; a
        # wrapped counter makes one rate 0 instead (see sample_fields).
        disk = ps.disk_io_counters(perdisk=False, nowrap=False)
        if disk is not None:  # None where the host has no disk statistics (some containers)
            counters['disk_read_bytes'] = float(disk.read_bytes)
            counters['disk_write_bytes'] = float(disk.write_bytes)
        nics = ps.net_io_counters(pernic=True, nowrap=False)
        counters['net_recv_bytes'] = float(sum(n.bytes_recv for name, n in nics.items() if name != 'lo'))
        counters['net_sent_bytes'] = float(sum(n.bytes_sent for name, n in nics.items() if name != 'lo'))

    def _read_tree(self, now: float) -> tuple:
        """``(RSS bytes, CPU seconds)`` of the process tree; the CPU seconds only grow."""
        ps = self._psutil
        if now - self._tree_at >= TREE_REFRESH:
            self._tree = [self._root] + self._root.children(recursive=True)
            self._tree_at = now
        rss = 0.0
        alive = []
        for process in self._tree:
            try:
                times = process.cpu_times()
                rss += process.memory_info().rss
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                self._tree_cpu.pop(process.pid, None)
                continue
            alive.append(process)
            seconds = times.user + times.system
            self._tree_cpu_total += max(0.0, seconds - self._tree_cpu.get(process.pid, 0.0))
            self._tree_cpu[process.pid] = seconds
        self._tree = alive
        return rss, self._tree_cpu_total


def visible_gpus(nvml: Any, setting: Optional[str]) -> List[Any]:
    """NVML handles of the GPUs the job sees, in CUDA's order: the devices named by
    ``CUDA_VISIBLE_DEVICES`` (``setting``; indices or ``GPU-`` UUID prefixes; as CUDA does, the
    list ends at the first entry that names no device), every device when it is unset."""
    count = nvml.nvmlDeviceGetCount()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    if setting is None:
        return handles
    uuids: Optional[List[str]] = None
    chosen = []
    for token in (t.strip() for t in setting.split(',')):
        if token.lstrip('-').isdigit():
            index = int(token)
            if not 0 <= index < count:
                break
            chosen.append(handles[index])
            continue
        if not token.startswith('GPU-'):
            break  # MIG instances and other spellings are not sampled
        if uuids is None:
            uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        matches = [h for h, uuid in zip(handles, uuids) if uuid.startswith(token)]
        if len(matches) != 1:
            break
        chosen.append(matches[0])
    return chosen


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuProbe:
    """Per-GPU numbers through NVML: for GPU ``k`` (its index among the GPUs the job sees),
    ``gpu<k>_util_percent``, ``gpu<k>_memory_used_bytes``, ``gpu<k>_memory_total_bytes``,
    ``gpu<k>_power_watts``, ``gpu<k>_temperature_c``, ``gpu<k>_sm_clock_mhz``, and
    ``gpu<k>_throttle_reasons`` (NVML's bit mask) in the samples where it is not zero.

    ``nvml`` is the ``pynvml`` module, or an object with the same functions. A field the device
    does not support (e.g. power on some boards) is left out of every sample.
    """

    def __init__(self, nvml: Any, cuda_visible_devices: Optional[str] = None) -> None:
        self._nvml = nvml
        nvml.nvmlInit()
        self._throttle = getattr(nvml, 'nvmlDeviceGetCurrentClocksEventReasons', None) or getattr(
            nvml, 'nvmlDeviceGetCurrentClocksThrottleReasons')
        self._fields: List[tuple] = []  # (name, handle, reader of the handle) of each field
        for k, handle in enumerate(visible_gpus(nvml, cuda_visible_devices)):
            for name, reader in self._readers(k):
                try:
                    value = reader(handle)
                except nvml.NVMLError:
                    continue  # not supported by this device
                if name.endswith('_memory_total_bytes'):  # the same all along: read once
                    reader = lambda h, value=value: value  # noqa: E731
                self._fields.append((name, handle, reader))

    def _readers(self, k: int) -> List[tuple]:
        nvml = self._nvml
        return [
            (f'gpu{k}_{GPU_UTIL}', lambda h: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)),
            (f'gpu{k}_{GPU_MEMORY_USED}', lambda h: float(nvml.nvmlDeviceGetMemoryInfo(h).used)),
            (f'gpu{k}_memory_total_bytes', lambda h: float(nvml.nvmlDeviceGetMemoryInfo(h).total)),
            (f'gpu{k}_power_watts', lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
            (f'gpu{k}_temperature_c', lambda h: float(
                nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))),
            (f'gpu{k}_sm_clock_mhz', lambda h: float(
                nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))),
            (f'gpu{k}_throttle_reasons', lambda h: float(self._throttle(h))),
        ]

    def read(self, reading: Reading) -> None:
        gauges = reading.gauges
        for name, handle, reader in self._fields:
            value = reader(handle)
            if value or not name.endswith('_throttle_reasons'):
                gauges[name] = value

    def close(self) -> None:
        self._nvml.nvmlShutdown()


def _gpu_driver_present() -> bool:
    """Whether this host has an NVIDIA driver (then a missing NVML deserves a warning)."""
    return os.path.exists('/proc/driver/nvidia') or os.path.exists('/dev/nvidiactl')


def default_probes() -> List[Any]:
    """The probes this process can have: :class:`HostProbe` when ``psutil`` imports,
    :class:`GpuProbe` when NVML initialises. One warning for each that is missing, except NVML
    on a host without an NVIDIA driver."""
    probes: List[Any] = []
    try:
        import psutil
    except ImportError:
        _warn('psutil is not installed, so no host metrics are sampled '
              "(pip install 't9k-em[system]')")
    else:
        probes.append(HostProbe(psutil))
    try:
        import pynvml
    except ImportError:
        if _gpu_driver_present():
            _warn("nvidia-ml-py is not installed, so no GPU metrics are sampled "
                  "(pip install 't9k-em[system]')")
        return probes
    try:
        probes.append(GpuProbe(pynvml, os.environ.get('CUDA_VISIBLE_DEVICES')))
    except Exception as e:  # noqa: BLE001 - NVML errors are many; any means: no GPU metrics
        if _gpu_driver_present():
            _warn(f'NVML is not usable ({e!r}), so no GPU metrics are sampled')
    return probes


# --- samples ----------------------------------------------------------------------------------

def sample_fields(previous: Optional[Reading], current: Reading) -> Dict[str, float]:
    """The fields of one sample: the gauges of ``current``, and the rates since ``previous``
    (none in the first sample of a Run, which has no previous reading):
    ``cpu_percent`` (busy share of all cores), ``process_cpu_percent`` (CPU time of the process
    tree per second, in % of one core) and the ``*_per_s`` fields of :data:`RATE_FIELDS`."""
    fields = dict(current.gauges)
    if previous is None:
        return fields
    was, now = previous.counters, current.counters
    seconds = current.time - previous.time
    if seconds <= 0:
        return fields
    if 'cpu_all_seconds' in now and 'cpu_all_seconds' in was:
        all_cores = now['cpu_all_seconds'] - was['cpu_all_seconds']
        busy = now['cpu_busy_seconds'] - was['cpu_busy_seconds']
        fields['cpu_percent'] = 100.0 * busy / all_cores if all_cores > 0 else 0.0
    if 'process_cpu_seconds' in now and 'process_cpu_seconds' in was:
        fields['process_cpu_percent'] = 100.0 * (
            now['process_cpu_seconds'] - was['process_cpu_seconds']) / seconds
    for counter, field in RATE_FIELDS.items():
        if counter in now and counter in was:
            fields[field] = max(0.0, now[counter] - was[counter]) / seconds
    return fields


class Subscription:
    """The sampling of one Run: its writer, interval, next sample index and last reading."""

    __slots__ = ('log', 'interval', 'next_due', 'step', 'previous', 'active')

    def __init__(self, log: Callable[..., None], interval: float, first_step: int) -> None:
        self.log: Optional[Callable[..., None]] = log
        self.interval = interval
        self.next_due = time.monotonic()
        self.step = first_step
        self.previous: Optional[Reading] = None
        self.active = True

    def record(self, reading: Reading) -> None:
        fields = sample_fields(self.previous, reading)
        self.previous = reading
        if fields and self.log is not None:
            self.log(METRIC_TYPE, fields, self.step)
            self.step += 1


class Sampler:
    """The one daemon thread of a process that samples for every subscribed Run.

    The thread runs while some Run is subscribed. Each reading serves every Run that is due;
    each Run computes its rates over its own interval. ``probes`` makes the probes, on the
    sampler thread at the first reading (NVML's initialisation can take a while); they are closed
    when the last Run leaves, so that each stretch of sampling sees the GPUs and the probes'
    failures afresh (and warns about each at most once).
    """

    def __init__(self, probes: Callable[[], List[Any]] = default_probes) -> None:
        self._make_probes = probes
        self._probes: Optional[List[Any]] = None
        # Re-entrant: the SIGTERM handler ends Runs on the main thread, maybe inside subscribe().
        self._lock = threading.RLock()  # the subscriptions and the thread
        self._probe_lock = threading.Lock()  # the probes
        self._subscriptions: List[Subscription] = []
        self._event = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def subscribe(self, log: Callable[..., None], interval: float,
                  first_step: int = 0) -> Subscription:
        """Samples into ``log(type, fields, step)`` every ``interval`` seconds, the first time
        now."""
        subscription = Subscription(log, interval, first_step)
        with self._lock:
            self._subscriptions.append(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name='t9k-em-system-metrics',
                                                daemon=True)
                self._thread.start()
        self._event.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stops sampling for ``subscription`` after a last sample (taken on the calling
        thread, unless the probes stay busy for :data:`FINAL_SAMPLE_WAIT` seconds)."""
        with self._lock:
            if not subscription.active:
                return
            subscription.active = False
            self._subscriptions.remove(subscription)
        self._event.set()
        if not self._probe_lock.acquire(timeout=FINAL_SAMPLE_WAIT):
            return
        try:
            reading = self._read()
            if reading is not None:
                self._record(subscription, reading)
            with self._lock:
                last = not self._subscriptions
            if last:
                self._close_probes()
        finally:
            self._probe_lock.release()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._subscriptions:
                    self._thread = None
                    return
                now = time.monotonic()
                due = [s for s in self._subscriptions if s.next_due <= now]
                wait = min(s.next_due for s in self._subscriptions) - now
            if not due:
                self._event.wait(wait)
                self._event.clear()
                continue
            with self._probe_lock:
                # Runs that ended meanwhile took their last sample (and may have closed the probes).
                reading = self._read() if any(s.active for s in due) else None
            for subscription in due:
                subscription.next_due = max(subscription.next_due + subscription.interval,
                                            time.monotonic())
                if reading is not None:
                    with self._lock:
                        if subscription.active:
                            self._record(subscription, reading)

    def _read(self) -> Optional[Reading]:
        """One reading of every working probe (made at the first call), or ``None`` when none
        works; a probe that fails is reported once and dropped. Called with the probe lock."""
        if self._probes is None:
            try:
                self._probes = list(self._make_probes())
            except Exception as e:  # noqa: BLE001 - never into the training
                _warn(f'cannot start sampling ({e!r}); none is recorded')
                self._probes = []
        if not self._probes:
            return None
        reading = Reading(time.monotonic())
        for probe in list(self._probes):
            try:
                probe.read(reading)
            except Exception as e:  # noqa: BLE001 - never into the training
                _warn(f'{type(probe).__name__} failed ({e!r}); its metrics are no longer sampled')
                self._probes.remove(probe)
                _close(probe)
        return reading if self._probes else None

    def _close_probes(self) -> None:
        for probe in self._probes or ():
            _close(probe)
        self._probes = None

    @staticmethod
    def _record(subscription: Subscription, reading: Reading) -> None:
        try:
            subscription.record(reading)
        except Exception as e:  # noqa: BLE001 - never into the training
            _warn(f'cannot log a sample ({e!r}); this Run records no more')
            subscription.log = None

    def after_fork_in_child(self) -> None:
        """A forked child samples for none of its parent's Runs (NVML handles do not survive a
        fork either)."""
        self._probes = None
        self._lock = threading.RLock()
        self._probe_lock = threading.Lock()
        self._subscriptions = []
        self._event = threading.Event()
        self._thread = None


def _close(probe: Any) -> None:
    close = getattr(probe, 'close', None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - a probe being dropped: nothing left to report to
            pass


_SAMPLER = Sampler()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_SAMPLER.after_fork_in_child)


def start(log: Callable[..., None], interval: float, run_dir: str) -> Subscription:
    """Samples every ``interval`` seconds into ``log`` (a Run's ``MetricWriter.log``), from
    now on; the steps go on after the last sample already in ``run_dir`` (a reopened Run)."""
    path = run_files.metric_path(run_dir, METRIC_TYPE)
    last = metric_file.last_entry(path) if os.path.exists(path) else None
    step = (last or {}).get('sequence', {}).get('step')
    first_step = step + 1 if isinstance(step, int) else 0
    return _SAMPLER.subscribe(log, interval, first_step)


def stop(subscription: Subscription) -> None:
    """Takes a last sample and stops sampling for the Run of ``subscription``."""
    _SAMPLER.unsubscribe(subscription)
