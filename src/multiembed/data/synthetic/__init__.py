"""The built-in synthetic world: a dataset with known interests, for demos, tests and benchmarks.

It has what the paper's method exists for (KDD'25, sections 1 and 3.3 to 3.5):

- a topic space of `n_topics` topics with `subtopics_per_topic` sub-topics each;
  every item belongs to one sub-topic and its parent topic (some to a second,
  unrelated topic), carries a noisy pretrained vector (sub-topic centroid +
  topic direction + noise) and two categorical codes; a few items are invalid
  (null vector); popularity is Zipf-like inside each sub-topic;
- users with 2 to 6 recent interests of head / torso / tail weight, some with a
  long-term interest that only their followed topics reveal, new users and
  low-activity users, followed topics (mostly matching their interests, some
  noise, a few unfollowed inside the window);
- `days` of engagements logged by a policy that mixes an implicit home feed with
  a legacy inverted-index retriever over followed topics, which logs the
  followed topic as `source_topic`; a share of actions are negative ("hide").

Usage:

>>> from multiembed.config.sections import SyntheticConfig
>>> adapter = SyntheticAdapter(SyntheticConfig(n_users=30, n_items=400, n_topics=4, seed=7))
>>> raw = adapter.read()
>>> sum(b.num_rows for b in raw.items())
400

`adapter.write_ground_truth(out_dir)` (or `write_ground_truth(config,
out_dir)`) writes the true interests, follows and item topics beside the
prepared tables.
"""

from multiembed.data.synthetic._adapter import SyntheticAdapter, write_ground_truth
from multiembed.data.synthetic._world import World, generate_world

__all__ = ["SyntheticAdapter", "World", "generate_world", "write_ground_truth"]
