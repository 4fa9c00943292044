"""Measuring the codec the way the literature does.

metrics (PSNR, MS-SSIM, ST-LPIPS, SSIMULACRA2, patch FID/KID, BD-rate, detail energy) ·
stlpips_net (the shift-tolerant LPIPS network) · run (`hfd eval`: every image × bitrate ×
method, resumable) · summary (BD-rates, paired differences) · report (report.md and plots)."""
