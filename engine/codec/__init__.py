"""The codec: everything that decides the bits of a `.hfd` file and turns them back into pixels.

autoencoder (analysis/synthesis transforms, hyperprior, gain units) · entropy_models and
context_model (the probability model of every latent) · range_coding (integer tables and the
coder) · bitstream (the `.hfd` container) · latent_optimisation (an optional slower encoder) ·
images (reading and writing pictures) · classical (JPEG / WebP / AVIF at a matched size)."""
