"""keep_freed_memory: a repeated large allocation stops page-faulting."""

import subprocess
import sys

import pytest

from remi_tutorial.memory import keep_freed_memory

# Allocates, touches and frees a 64 MB tensor 20 times; prints the page faults it took.
REPEATED_ALLOCATION = """
import resource, sys, torch
from remi_tutorial.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.ones(16 * 2**20)  # the first allocation faults in either case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")


def page_faults(mode):
    completed = subprocess.run([sys.executable, "-c", REPEATED_ALLOCATION, mode],
                               capture_output=True, text=True, check=True)
    return int(completed.stdout.strip().splitlines()[-1])


@linux_only
def test_keep_freed_memory_is_accepted_by_glibc():
    assert keep_freed_memory() is True


@linux_only
def test_a_freed_large_tensor_is_reused_instead_of_faulted_in_again():
    pages = 16 * 2**20 * 4 // 4096  # one 64 MB tensor in 4 KiB pages
    assert page_faults("default") >= 19 * pages  # every allocation faults in anew
    assert page_faults("keep") <= 2 * pages  # the heap grows once, then is reused
