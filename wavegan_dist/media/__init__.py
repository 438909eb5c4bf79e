"""What people look at and listen to: WAV files, labelled spectrogram PNGs (grid.py,
with its own pixel font, font.py) and the names of labels (labels.py). Shared by
training (TensorBoard images, WAV snapshots) and by generate and evaluate; imports
nothing from training/ or inference/."""
