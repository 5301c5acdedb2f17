"""``import t9k.em`` stays cheap: no HTTP stack, no YAML, no framework at import time.

The budget is 150 ms; it is checked on the process's CPU time, so that a busy machine (other
tests, other jobs on 2 cores) does not count time spent waiting for a CPU.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest

CODE = '''
import json, sys, time
t = time.process_time()
import t9k.em
elapsed = time.process_time() - t
heavy = [m for m in ('requests', 'yaml', 'urllib3', 'torch', 'tensorflow', 'numpy', 'rich')
         if m in sys.modules]
print(json.dumps({'seconds': elapsed, 'heavy': heavy}))
'''


@pytest.mark.timeout(120)
def test_import_t9k_em_is_fast_and_light():
    results = [json.loads(subprocess.run([sys.executable, '-c', CODE], capture_output=True,
                                         text=True, check=True).stdout) for _ in range(5)]
    assert results[0]['heavy'] == []
    median = statistics.median(r['seconds'] for r in results)
    assert median < 0.150, f'import t9k.em took {median * 1000:.0f} ms (median of 5)'
