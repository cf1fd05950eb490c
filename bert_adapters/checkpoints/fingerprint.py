"""A deterministic digest of a base encoder, so task artifacts can refuse another base."""

import hashlib
import json

import numpy as np


def base_fingerprint(encoder):
    """Returns `"sha256:<hex>"` over the base architecture and weights.

    Covers the architecture fields of the config (not dropout) and every base
    weight (adapters excluded) in name order, as float32 little-endian bytes
    with name and shape, so the digest is the same whatever the compute dtype
    or the order variables were created in.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(encoder.config.architecture(), sort_keys=True).encode())
    for name, variable in sorted(encoder.base_weight_map().items()):
        value = np.ascontiguousarray(np.asarray(variable.numpy(), dtype="<f4"))
        digest.update(f"{name}:{value.shape}".encode())
        digest.update(value.tobytes())
    return "sha256:" + digest.hexdigest()
