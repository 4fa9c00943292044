"""The comparison app: windows, widgets and one worker thread that calls engine/api.py.

The viewer renders state and sends requests; every model computation happens in the
engine, on the worker thread (viewer/worker.py)."""
