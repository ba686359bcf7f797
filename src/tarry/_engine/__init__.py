"""Replay, the worker loop, timers and event routing: how runs make progress."""
