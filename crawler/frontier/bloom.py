"""Sizing and bit positions of the Bloom filter used for dedupe when Redis has no `BF.*`.

The filter is a plain bitset in Redis strings, written by the commit Lua script with SETBIT:
a URL is new when at least one of its k bits was still 0. Python computes the positions from
the URL's fingerprint (already a uniform 128-bit hash) by double hashing, so the script does
no hashing and both sides agree by construction.

A Redis string holds at most 2^32 bits, so a large filter is split into blocks; all k bits of
one URL fall in the same block (chosen by a separate hash), which keeps a URL's check inside
one key. With blocks this large the false-positive rate is the textbook one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

__all__ = ["BloomShape", "bloom_shape"]

MAX_BLOCK_BITS = 1 << 31  # well inside Redis's 2^32-bit string limit


@dataclass(frozen=True, slots=True)
class BloomShape:
    """m bits in `blocks` blocks of `block_bits`, k = `hashes` bits per item."""

    block_bits: int
    blocks: int
    hashes: int

    @property
    def bits(self) -> int:
        return self.block_bits * self.blocks

    def positions(self, fp: bytes) -> tuple[int, list[int]]:
        """(block index, k bit offsets inside that block) for a 16-byte fingerprint."""
        value = int.from_bytes(fp, "big")
        first = value >> 64
        step = (value & 0xFFFF_FFFF_FFFF_FFFF) | 1
        block = 0
        if self.blocks > 1:
            picker = hashlib.blake2b(fp, digest_size=8, person=b"bloomblk").digest()
            block = int.from_bytes(picker, "big") % self.blocks
        size = self.block_bits
        return block, [(first + i * step) % size for i in range(self.hashes)]

    def script_arg(self, fp: bytes) -> str:
        """The positions as the commit script reads them: "block:p1,p2,...,pk"."""
        block, offsets = self.positions(fp)
        return f"{block}:{','.join(map(str, offsets))}"


def bloom_shape(capacity: int, error_rate: float) -> BloomShape:
    """The optimal filter for `capacity` items at `error_rate` false positives."""
    bits = max(64, math.ceil(-capacity * math.log(error_rate) / (math.log(2) ** 2)))
    hashes = max(1, round(bits / capacity * math.log(2)))
    blocks = max(1, math.ceil(bits / MAX_BLOCK_BITS))
    return BloomShape(block_bits=math.ceil(bits / blocks), blocks=blocks, hashes=hashes)
