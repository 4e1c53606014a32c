"""Shared test setup.

Tests use tiny tensors, where intra-op threads only add contention (on a busy
2-core machine a multi-threaded small matmul can be 100x slower), so torch
runs single-threaded here.
"""

import torch

torch.set_num_threads(1)
