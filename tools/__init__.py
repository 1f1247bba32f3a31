"""Data loading, augmentation, reports and small utilities shared by train.py, predict.py and server.py."""
