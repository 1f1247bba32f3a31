"""Where a training run computes, and with whom (train.py --strategy; each backend's module imported only
when its strategy runs):

devices.py      Placement: this process's devices, the strategy scope, who writes (the chief)
cluster.py      the cluster from TF_CONFIG / KERAS_DISTRIBUTION_*, what workers agree on, the start watchdog
multiworker.py  TensorFlow's MultiWorkerMirroredStrategy under Keras 3's fit (its fixes, the input, collectives)
multiprocess.py JAX processes (jax.distributed): the same agreements through multihost_utils"""
