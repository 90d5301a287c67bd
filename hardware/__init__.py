"""sakd.hardware: what the chip runs, and a bit-accurate simulator of it.

numpy and h5py only (no torch, no spikingjelly), and Python 3.10 compatible, so that it also
runs inside the Lava reference environment.
"""
