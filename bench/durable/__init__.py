"""Pieces of bench/durable_vs_pubsub.py: RESP wire code and the three measured paths."""
