"""Training: the loop, the objectives and the stages that produce the shipped weights.

loop (resumable, bf16, EMA, DDP) · pairs (x_ae made on the fly by the frozen autoencoder) ·
autoencoder and decoders (the stages) · realism_objective and discriminator (the adversarial
and perceptual objective on what a sampler returns) · recipes (one TOML file per shipped model)."""
