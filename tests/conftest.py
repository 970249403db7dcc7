"""Suite-wide settings: one torch thread per test process.

On a 2-core machine, torch's thread pool costs more than it gains on the small tensors of
the tests, and several tests start training subprocesses of their own.
"""

import torch

torch.set_num_threads(1)
