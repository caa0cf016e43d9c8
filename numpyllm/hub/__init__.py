"""Model files in and out (`numpyllm.hub`).

  safetensors.py   the safetensors format: a JSON header and raw little-endian arrays
"""
