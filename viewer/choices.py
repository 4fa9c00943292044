"""The names of the choices the app offers, as plain data (no Qt, no torch): the command line
parses them before anything heavy is imported, and a child process that re-imports the app's
entry module stays light."""

DECODER_LABELS = {"diffusion": "Diffusion", "flow": "Rectified flow"}
DEVICES = {"auto": "Auto", "cpu": "CPU", "cuda": "GPU (CUDA)"}  # what a device may be called; offered: engine.api.devices()
