"""sakd.export: lower a trained spiking network to the hardware IR and write NIR, netx HDF5 and
ONNX files. Imports torch; never imports the trainer or the CLI."""
