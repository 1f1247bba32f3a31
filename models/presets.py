"""Training augmentation presets by name: what `train.py --augment` offers.

Only the names and what they mean; models/augmentation.py builds the Keras layers of each. Apart so
`train.py --help` lists them without loading Keras.
"""

#: name -> what a training image goes through on the device (after the host's random crop).
PRESETS = {
    "original": "the 2022 project's: on half the images a random affine (rotation ±30°, shift ±20%, shear ±0.2°, "
                "zoom ±20%, horizontal and vertical flips), on a quarter a cutout square of side input_size/4",
    "flip": "horizontal flips only (with the host's random crop: the plain keras.applications recipe)",
    "none": "nothing beyond the random crop",
}
DEFAULT_PRESET = "original"
