"""Model definitions: the hand-written ResNet50 and the classifier head used for garbage photos."""
