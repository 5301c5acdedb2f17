"""System metrics (``t9k_em_core.system_metrics``): host numbers are real (psutil) and checked
against ``/proc``; GPU numbers come from ``tests/support/recorded_nvml.py``, a stand-in for ``pynvml``
with values written down in NVML's units, because this machine has no GPU."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pytest
import requests

from support.legacy_loader import load_run_dir
from support.recorded_nvml import GIB, RecordedNvml
from t9k import em
from t9k_em_core import fileio, system_metrics
from t9k_em_core.system_metrics import GpuProbe, HostProbe, Reading, sample_fields, visible_gpus

MIB = 1 << 20


@pytest.fixture(autouse=True)
def sampling_on(em_dirs, monkeypatch):
    """Runs under ``em_dirs``, system metrics at their default (conftest turns them off), no
    real NVML (this host has none; a test that wants GPUs puts a RecordedNvml in its place)."""
    monkeypatch.delenv('EM_SYSTEM_METRICS', raising=False)
    monkeypatch.setitem(sys.modules, 'pynvml', None)  # import pynvml → ImportError
    return em_dirs


def samples(run) -> list:
    return run.metrics.get('system', [])


def sampler_threads() -> list:
    return [t for t in threading.enumerate() if t.name == 't9k-em-system-metrics']


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.02)


# --- host probe against /proc -------------------------------------------------------------------

def proc_rss(pid: int) -> int:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise AssertionError(f'no VmRSS for {pid}')


def tree_rss() -> int:
    """RSS of this process and its descendants (other tests' servers, browsers) from /proc."""
    pids = [os.getpid()] + [p.pid for p in psutil.Process().children(recursive=True)]
    total = 0
    for pid in pids:
        try:
            total += proc_rss(pid)
        except FileNotFoundError:
            pass
    return total


def proc_meminfo() -> dict:
    with open('/proc/meminfo') as f:
        return {line.split(':')[0]: int(line.split()[1]) * 1024 for line in f}


def proc_cpu_seconds() -> tuple:
    """(busy, all) CPU seconds of the host from /proc/stat."""
    with open('/proc/stat') as f:
        values = [int(v) for v in f.readline().split()[1:]]
    ticks = os.sysconf('SC_CLK_TCK')
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait) / ticks, total / ticks


def proc_net_bytes() -> tuple:
    """(received, sent) bytes of every interface but loopback, from /proc/net/dev."""
    recv = sent = 0
    with open('/proc/net/dev') as f:
        for line in f.readlines()[2:]:
            name, data = line.split(':', 1)
            if name.strip() != 'lo':
                fields = data.split()
                recv += int(fields[0])
                sent += int(fields[8])
    return recv, sent


def read_host(probe) -> Reading:
    reading = Reading(time.monotonic())
    probe.read(reading)
    return reading


def test_host_numbers_match_proc():
    probe = HostProbe(psutil)
    before = proc_cpu_seconds()
    reading = read_host(probe)
    after = proc_cpu_seconds()
    meminfo = proc_meminfo()
    gauges, counters = reading.gauges, reading.counters
    assert abs(gauges['memory_used_bytes'] - (meminfo['MemTotal'] - meminfo['MemAvailable'])) \
        < 64 * MIB
    assert before[1] - 0.5 <= counters['cpu_all_seconds'] <= after[1] + 0.5
    assert before[0] - 0.5 <= counters['cpu_busy_seconds'] <= after[0] + 0.5
    assert abs(gauges['process_rss_bytes'] - tree_rss()) < 8 * MIB + tree_rss() // 20
    recv, sent = proc_net_bytes()
    assert abs(counters['net_recv_bytes'] - recv) < MIB and abs(counters['net_sent_bytes'] - sent) < MIB
    assert {'disk_read_bytes', 'disk_write_bytes'} <= set(counters)


def test_tree_rss_and_cpu_include_a_child_that_allocates_200_mb():
    probe = HostProbe(psutil)
    alone = read_host(probe)
    child = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\n'
         'block = b"x" * (200 << 20)\n'  # written, so resident
         'end = time.process_time() + 0.3\n'
         'while time.process_time() < end: pass\n'
         'print("ready", flush=True); sys.stdin.read()'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == 'ready\n'
        probe._tree_at = float('-inf')  # look for new children now, not TREE_REFRESH s later
        with_child = read_host(probe)
        expected = tree_rss()
        assert abs(with_child.gauges['process_rss_bytes'] - expected) < 8 * MIB + expected // 20
        assert with_child.gauges['process_rss_bytes'] - alone.gauges['process_rss_bytes'] > 200 * MIB
        child_cpu = sum(psutil.Process(child.pid).cpu_times()[:2])
        assert child_cpu >= 0.3
        assert with_child.counters['process_cpu_seconds'] - alone.counters['process_cpu_seconds'] \
            >= child_cpu - 0.02
    finally:
        child.communicate('')
    gone = read_host(probe)
    assert gone.gauges['process_rss_bytes'] < with_child.gauges['process_rss_bytes'] - 200 * MIB
    assert gone.counters['process_cpu_seconds'] >= with_child.counters['process_cpu_seconds']


def test_rates_between_two_readings():
    previous, current = Reading(10.0), Reading(12.0)
    previous.counters.update(cpu_busy_seconds=100.0, cpu_all_seconds=400.0, process_cpu_seconds=5.0,
                             disk_read_bytes=1000.0, net_sent_bytes=50.0)
    current.counters.update(cpu_busy_seconds=103.0, cpu_all_seconds=404.0, process_cpu_seconds=6.5,
                            disk_read_bytes=5000.0, net_sent_bytes=50.0)
    current.gauges['memory_percent'] = 12.5
    assert sample_fields(None, current) == {'memory_percent': 12.5}  # first sample: no rates
    assert sample_fields(previous, current) == {
        'memory_percent': 12.5, 'cpu_percent': 75.0, 'process_cpu_percent': 75.0,
        'disk_read_bytes_per_s': 2000.0, 'net_sent_bytes_per_s': 0.0}


# --- GPU probe, with recorded values (no GPU here) -----------------------------------------------

@pytest.mark.parametrize('setting, indices', [
    (None, [0, 1, 2, 3]), ('2,0', [2, 0]), ('', []), ('-1', []), ('1,7,2', [1]),
    ('GPU-00000003', [3]), ('GPU-0000000', []), ('3,MIG-abc,1', [3]),
])
def test_visible_gpus_follow_cuda_visible_devices(setting, indices):
    nvml = RecordedNvml(count=4)
    assert [h.index for h in visible_gpus(nvml, setting)] == indices


def test_gpu_fields_units_and_unsupported_queries_recorded_values():
    nvml = RecordedNvml(count=3, unsupported=('nvmlDeviceGetPowerUsage',), throttle=[0, 4, 0])
    probe = GpuProbe(nvml, '2,1')
    assert nvml.initialised == 1
    reading = Reading(0.0)
    probe.read(reading)
    assert reading.gauges == {
        'gpu0_util_percent': 92.0, 'gpu0_memory_used_bytes': 12.0 * GIB,
        'gpu0_memory_total_bytes': 80.0 * GIB, 'gpu0_temperature_c': 63.0,
        'gpu0_sm_clock_mhz': 1410.0,
        'gpu1_util_percent': 91.0, 'gpu1_memory_used_bytes': 11.0 * GIB,
        'gpu1_memory_total_bytes': 80.0 * GIB, 'gpu1_temperature_c': 62.0,
        'gpu1_sm_clock_mhz': 1410.0, 'gpu1_throttle_reasons': 4.0,
    }
    probe.close()
    assert nvml.initialised == 0


def test_run_samples_8_recorded_gpus_and_the_host(monkeypatch):
    nvml = RecordedNvml(count=8, fail_after={})
    monkeypatch.setitem(sys.modules, 'pynvml', nvml)
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    run = em.create_run(name='gpus', system_metrics=0.1)
    time.sleep(0.35)
    run.finish()
    entries = samples(run)
    assert len(entries) >= 3
    last = entries[-1]['value']
    assert [last[f'gpu{k}_util_percent'] for k in range(8)] == [90.0 + k for k in range(8)]
    assert last['gpu7_power_watts'] == 312.507
    assert {'cpu_percent', 'process_cpu_percent', 'process_rss_bytes', 'memory_used_bytes',
            'disk_read_bytes_per_s', 'net_recv_bytes_per_s'} <= set(last)
    assert nvml.initialised == 0  # shut down when the last Run left


def test_a_failing_probe_warns_once_and_training_goes_on(monkeypatch, capfd):
    nvml = RecordedNvml(count=2, fail_after={'nvmlDeviceGetUtilizationRates': 4})
    monkeypatch.setitem(sys.modules, 'pynvml', nvml)
    run = em.create_run(name='lost-gpu', system_metrics=0.1)
    for step in range(40):
        run.log('train', {'loss': 1.0 / (step + 1)}, step=step)
        time.sleep(0.02)
    run.finish()
    err = capfd.readouterr().err
    assert err.count('EM WARNING') == 1 and 'GpuProbe failed' in err, err
    assert [e['sequence']['step'] for e in run.metrics['train']] == list(range(40))
    entries = samples(run)
    with_gpu = [e for e in entries if 'gpu0_util_percent' in e['value']]
    assert 1 <= len(with_gpu) < len(entries)  # GPU fields until the failure, host ones after
    assert 'process_rss_bytes' in entries[-1]['value']
    assert run.status == 'Complete'


def test_without_any_probe_one_warning_and_no_samples(monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, 'psutil', None)
    run = em.create_run(name='bare', system_metrics=0.1)
    time.sleep(0.3)
    run.log('train', {'loss': 1.0}, step=1)
    run.finish()
    err = capfd.readouterr().err
    assert err.count('EM WARNING') == 1 and 'psutil is not installed' in err
    assert set(run.metrics) == {'train'}


# --- Runs -------------------------------------------------------------------------------------

def test_on_by_default_first_sample_at_creation_last_at_finish():
    run = em.create_run(name='default')  # the default: every second
    started = datetime.datetime.fromisoformat(run.start_timestamp)
    wait_for(lambda: samples(run))
    assert sampler_threads()
    first = samples(run)[0]
    assert first['sequence'] == {**first['sequence'], 'step': 0, 'epoch': None}
    assert (datetime.datetime.fromisoformat(first['sequence']['timestamp']) - started).total_seconds() < 0.5
    finishing = datetime.datetime.now().astimezone()
    run.finish()
    entries = samples(run)
    assert [e['sequence']['step'] for e in entries] == list(range(len(entries)))
    assert datetime.datetime.fromisoformat(entries[-1]['sequence']['timestamp']) >= finishing
    assert 'cpu_percent' in entries[-1]['value']  # the last sample has rates
    wait_for(lambda: not sampler_threads())  # no Run left: the thread ends
    time.sleep(0.2)
    assert len(samples(run)) == len(entries)


def test_interval_one_sample_per_interval_and_several_runs_share_the_thread():
    fast = em.create_run(name='fast', system_metrics=0.1)
    slow = em.create_run(name='slow', system_metrics=60)
    time.sleep(0.55)
    wait_for(lambda: samples(slow))
    assert len(sampler_threads()) == 1
    fast.finish()
    slow.finish()
    assert 5 <= len(samples(fast)) <= 9
    assert [e['sequence']['step'] for e in samples(slow)] == [0, 1]  # creation and finish


@pytest.mark.parametrize('setting, env', [(False, None), (None, '0'), (None, 'off')])
def test_turned_off(monkeypatch, setting, env):
    if env is not None:
        monkeypatch.setenv('EM_SYSTEM_METRICS', env)
    run = em.create_run(name='off', system_metrics=setting)
    run.log('train', {'loss': 1.0}, step=1)
    time.sleep(0.1)
    run.finish()
    assert set(run.metrics) == {'train'}


def test_environment_sets_the_interval(monkeypatch):
    monkeypatch.setenv('EM_SYSTEM_METRICS', '0.1')
    run = em.create_run(name='env')
    time.sleep(0.35)
    run.finish()
    assert len(samples(run)) >= 3


@pytest.mark.parametrize('setting, error', [(0.05, ValueError), ('fast', TypeError),
                                            (float('nan'), ValueError), (-1, ValueError)])
def test_bad_settings_are_refused_before_anything_is_written(em_dirs, setting, error):
    with pytest.raises(error, match='system_metrics'):
        em.create_run(name='bad', system_metrics=setting)
    assert not os.path.exists(em_dirs / 'runs')


def test_bad_environment_is_named(monkeypatch):
    monkeypatch.setenv('EM_SYSTEM_METRICS', 'sometimes')
    with pytest.raises(ValueError, match='EM_SYSTEM_METRICS'):
        em.create_run(name='bad')


def test_config_file_sets_it(tmp_path):
    config = tmp_path / 'run.yaml'
    config.write_text('name: from-file\nsystem_metrics: false\n')
    run = em.create_run(config_path=str(config))
    run.finish()
    assert 'system' not in run.metrics


def test_reopened_run_continues_the_sample_steps():
    run = em.create_run(name='resumed', system_metrics=60)
    wait_for(lambda: samples(run))
    run.finish()
    again = em.load_run(run.local, system_metrics=60)
    wait_for(lambda: len(samples(again)) == 3)
    again.finish()
    assert [e['sequence']['step'] for e in samples(again)] == [0, 1, 2, 3]


def test_inert_run_does_not_sample(monkeypatch):
    monkeypatch.setenv('RANK', '1')
    run = em.create_run(name='rank1', system_metrics=0.1)
    assert not sampler_threads()
    run.finish()


def test_a_0_6_0b0_reader_sees_an_ordinary_metric_file():
    run = em.create_run(name='legacy', system_metrics=0.1)
    run.log('train', {'loss': 0.5}, step=1)
    time.sleep(0.25)
    run.finish()
    loaded = load_run_dir(run.local)
    assert 'system' in fileio.read_yaml(os.path.join(run.local, 'index.yaml'))['metrics']
    assert loaded['metrics']['system'][0]['sequence']['step'] == 0


def test_forked_child_does_not_sample_its_parents_runs():
    run = em.create_run(name='forks', system_metrics=0.1)
    pid = os.fork()
    if pid == 0:  # the child: its sampler holds no Run
        os._exit(0 if not system_metrics._SAMPLER._subscriptions else 1)
    _, status = os.waitpid(pid, 0)
    run.finish()
    assert os.waitstatus_to_exitcode(status) == 0


# --- server: what the runs table's GPU columns are made of ---------------------------------------------------

def test_uploaded_runs_show_mean_gpu_util_and_peak_gpu_memory(em_server, em_dirs, monkeypatch):
    """Two Runs sampled by the SDK (one with 2 recorded GPUs, one host only), uploaded to a real
    server; the search records carry the ``system`` summaries the folder page's **Mean GPU util**
    (count-weighted mean of the GPUs' means) and **Peak GPU memory** (largest max) are made of."""
    from t9k_em_core import client

    monkeypatch.setenv('T9K_CONFIG', str(em_dirs / 't9k-config.yaml'))
    monkeypatch.setenv('EM_UPLOAD_STATE_DIR', str(em_dirs / 'upload-state'))
    monkeypatch.setitem(sys.modules, 'pynvml', RecordedNvml(count=2))
    gpu_run = em.create_run(name='gpu', system_metrics=0.1)
    time.sleep(0.3)
    gpu_run.finish()
    monkeypatch.setitem(sys.modules, 'pynvml', None)
    host_run = em.create_run(name='host', system_metrics=0.1)
    host_run.finish()
    folder = f'system-{uuid.uuid4().hex[:8]}'
    client.login(em_server.url, em_server.api_key)
    try:
        gpu_run.upload(folder=folder, make_folder=True)
        host_run.upload(folder=folder)
    finally:
        client.logout()
    found = requests.get(f'{em_server.url}/api/ui/v1/search/runs',
                         params={'folder': f'/{em_server.user}/{folder}'},
                         headers={'Authorization': f'Bearer {em_server.api_key}'}, timeout=30)
    found.raise_for_status()
    gpu = {}
    for record in found.json()['runs']:
        system = record['summaries']['system']
        util = [s for name, s in system.items() if re.fullmatch(r'gpu\d+_util_percent', name)]
        memory = [s['max'] for name, s in system.items() if re.fullmatch(r'gpu\d+_memory_used_bytes', name)]
        gpu[record['name']] = {'util_mean': sum(s['mean'] * s['count'] for s in util) / sum(s['count'] for s in util),
                               'memory_peak': max(memory)} if util else None
    # RecordedNvml: GPU k is always 90 + k % busy and uses 10 + k GiB.
    assert gpu == {'gpu': {'util_mean': 90.5, 'memory_peak': 11 * GIB}, 'host': None}
