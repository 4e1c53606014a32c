"""A tiny raw dataset for the tests of prepared directories."""

import pyarrow as pa

from multiembed.data.adapters.base import RawDataset

T0 = 1_600_000_000


def tiny_raw(n_items: int) -> RawDataset:
    """`n_items` items on 3 topics and 3 engagements per item by 7 users, one second apart."""

    def items():
        yield pa.RecordBatch.from_pydict(
            {
                "item_id": pa.array(range(n_items), pa.int64()),
                "topics": pa.array([[str(k % 3)] for k in range(n_items)], pa.list_(pa.string())),
                "_file": ["items"] * n_items,
                "_row": pa.array(range(n_items), pa.int64()),
            }
        )

    def engagements():
        n = 3 * n_items
        yield pa.RecordBatch.from_pydict(
            {
                "user_id": pa.array([k % 7 for k in range(n)], pa.int64()),
                "item_id": pa.array([k % n_items for k in range(n)], pa.int64()),
                "ts": pa.array([T0 + k for k in range(n)], pa.int64()),
                "action": ["click"] * n,
                "_file": ["log"] * n,
                "_row": pa.array(range(n), pa.int64()),
            }
        )

    return RawDataset(name=f"log of {n_items} items", items=items, engagements=engagements)
