"""Training and evaluation examples: target engagements with the history that preceded them.

One example per target, a *positive* engagement among the chosen target events:

- ``history [N, L]``: the item ids of the user's last ``L`` history events
  strictly before the target's timestamp, oldest first and right-aligned (the
  most recent event sits at position ``L - 1``); missing slots on the left hold
  ``PAD = -1``.
- Ties: events with the same timestamp as the target are never history, not
  even ones logged before it, so an example sees nothing it could not have seen
  when the request was served (and never its own event).
- ``history_valid [N, L]``: the slot holds an item that is valid in the items
  table *and* a positive action (the mask of Eq. 6); False on padding.
- ``history_negative [N, L]``: the slot holds a negative action (hide, skip, ...).
- ``history_ts [N, L]`` (optional): timestamps of the slots, ``-1`` on padding.
- ``target, target_ts, user, event [N]``: the target item, its timestamp, the
  user and the target's row in the engagements table.
- ``source_topic [N]``: the topic logged with the target, ``-1`` when none.
- ``followed [N, T]``: topics the user followed at the target's time
  (``followed_at <= ts`` and ``unfollowed_at`` null or ``> ts``), most
  recently followed first (ties: lower topic first), without duplicates, at
  most ``T = max_topics``, padded on the right with ``-1``.

Examples are ordered by user, then time, then engagement row. They are stored
as ``.npy`` files in a directory with a ``meta.json`` (`build_examples`; it carries
its own checksum and the CRC-32 of every array file, checked by
``ExampleStore.open(path, verify=True)``), opened as read-only memory maps
(`ExampleStore`) and served to PyTorch by `ExampleDataset` and `make_loader`.
"""

from multiembed.data.examples._build import build_examples
from multiembed.data.examples._format import FORMAT_VERSION, META_FILE, PAD, Example
from multiembed.data.examples._loader import EpochBatchSampler, ExampleDataset, make_loader
from multiembed.data.examples._store import ExampleStore

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "PAD",
    "EpochBatchSampler",
    "Example",
    "ExampleDataset",
    "ExampleStore",
    "build_examples",
    "make_loader",
]
