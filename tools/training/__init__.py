"""Training (train.py's library): usage (checks before Keras), run (a run or --test_only), phases (the
recipes), callbacks, state (the run folder), resume (epoch backups), data (a data folder split into
loaders), loader + cache (decoded photos), report. Devices and strategies: tools/distributed. The
augmentation runs on the device: models/augmentation.py."""
