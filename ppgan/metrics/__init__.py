"""Evaluation: reconstruction metrics (PSNR, SSIM) and the LSE-D / LSE-C lip-sync scores."""
from .builder import METRICS, build_metric
from .psnr_ssim import PSNR, SSIM, calculate_psnr, calculate_ssim
from .syncnet_eval import SyncNetV2, load_syncnet_v2
