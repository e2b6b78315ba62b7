"""The tracing engine: envoys, the with-blocks, and the interleaved forward."""
