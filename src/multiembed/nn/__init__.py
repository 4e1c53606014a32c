"""Neural building blocks: pure tensor math (`multiembed.nn.functional`) and modules."""
