"""The data layer: image sources (`images.py`), the anomaly split (`anomaly.py`), the toy
mixtures (`toy.py`) and the input pipeline (`pipeline.py`). It imports nothing above it; what a
run trains on and how it is scored are assembled on top, in `smallgan_jax.datasets`."""
