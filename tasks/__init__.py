"""Tasks: pure computations over features/images that score a generated image set."""
