"""Training (train.py's library): usage (checks before Keras), run (a run or --test_only), devices,
phases (the recipes), callbacks, state (the run folder), resume (epoch backups), loader + cache (decoded
photos), report. The augmentation itself runs on the device: models/augmentation.py."""
