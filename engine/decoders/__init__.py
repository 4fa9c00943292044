"""What runs after the bits: the post-filter and the score-based decoders that refine x_ae.

unet (the conditional network all of them share) · schedules, diffusion, flow (the maths of
each decoder: losses, estimates, samplers) · tiling (any image size in bounded memory) ·
post_filter (the MSE estimate E[x | x_ae]) · realism_schedule (the default realism by rate) ·
score_decoder (a trained decoder with its facts, settings checks and precision policy)."""
