"""Functions written with Inngest's Python SDK, run by Tarry (API §13; docs/inngest.md).

``config`` reads a sync into Tarry's function specs, ``driver`` is the body of
such a function (each turn a call to the SDK, each opcode a Tarry step), and
``sync`` takes, stores and loads syncs.
"""
