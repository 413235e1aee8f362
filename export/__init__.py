"""Export stage: TFLite conversion, quantization, metadata, verification and benchmarks."""
