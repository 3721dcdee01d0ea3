"""start-here's machine measurements: the spec table a measured bandwidth is read against, and STREAM's array rule."""

import pytest

from sparkbooks.dataframes import bandwidth
from sparkbooks.exceptions import InputError


def test_the_spec_covers_the_station_and_the_gpus_the_check_runs_on():
    # review 48 (round 6): only the GB10 had a spec, so a Station's or an H100's triad stood beside nothing
    assert bandwidth.spec_gbps("NVIDIA GB10") == 273.0
    assert bandwidth.spec_gbps("NVIDIA GB300") == 8000.0
    assert bandwidth.spec_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert bandwidth.spec_gbps("NVIDIA H100 PCIe") == 2000.0  # the specific name before the general one
    assert bandwidth.spec_gbps("NVIDIA H200") == 4800.0
    assert bandwidth.spec_gbps("NVIDIA GH200 480GB") == 4000.0  # not H200's 4,800 by a substring (review 48, round 7)
    assert bandwidth.spec_gbps("NVIDIA GH200 144G HBM3e") == 4900.0 and bandwidth.spec_gbps("NVIDIA H100 NVL") == 3900.0
    assert bandwidth.spec_gbps("NVIDIA RTX 6000 Ada Generation") is None and bandwidth.spec_gbps(None) is None


def test_triad_arrays_grow_past_four_times_the_cache():
    # STREAM's rule: each array ≥ 4 × the last-level cache; 128 MiB arrays would sit in a GB300-sized L2
    assert bandwidth.stream_elements(2**24, 30 * 2**20) == 2**24  # 128 MiB ≥ 4 × 30 MiB: unchanged
    assert bandwidth.stream_elements(2**24, 50 * 2**20) == 2**25  # 4 × 50 MiB = 200 MiB → 256 MiB per array
    assert bandwidth.stream_elements(2**24, 126 * 2**20) == 2**26  # 4 × 126 MiB = 504 MiB → 512 MiB per array
    assert bandwidth.stream_elements(2**24, 32 * 2**20) == 2**24


def test_the_cpu_triad_sizes_its_arrays_past_the_last_level_cache():
    cache = bandwidth.last_level_cache_bytes()
    assert cache >= 0
    measured = bandwidth.triad(2**20, repeats=3, trials=1)
    assert measured.elements * 8 >= 4 * cache  # STREAM's rule on the CPU too (a Grace L3 is ~114 MB)


def test_the_cpu_triad_reports_its_repeats_and_refuses_cache_sized_arrays():
    measured = bandwidth.triad(2**20, repeats=3, trials=1)
    assert len(measured.gbps) == 3 and measured.median > 0 and measured.passes == 2
    with pytest.raises(InputError, match="fits in caches"):
        bandwidth.triad(2**10)
