"""The one engine worker, on its own thread: the only part of the viewer that calls the engine
(through engine.api). jobs: the plain-data messages between it and the window; thread: the
worker and the host that starts and stops its QThread."""
