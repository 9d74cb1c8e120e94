"""The GAN stylizer system: how the generator, the discriminator and the perceptual losses interact.

One batch = one generator forward, then a D step on the detached output, then a G step:
    L_D = adversarial(D(real style crops), D(stylized)) [+ r1·R1]
    L_G = α·L_style + β·L_content + tv·L_tv + adv·λ·L_adv   (λ: see _generator_step)
With two optimizers under manual optimization, Lightning's trainer.global_step counts optimizer
steps (2 per batch, 1 during a content-only warm-up). Everything in our configs counts generator
steps instead (self.g_step, one per batch), which is saved in checkpoints.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.nn.functional as F

from gan_stylizer.dial import adversarial_weights, balance_pull, sample_strengths, strength_to_alpha
from gan_stylizer.losses import d_loss, g_adv_loss, r1_penalty, tv_loss
from gan_stylizer.models.discriminator import PatchDiscriminator
from gan_stylizer.models.generator import build_generator
from gan_stylizer.perceptual import PerceptualCriterion
from gan_stylizer.plain import to_plain
from gan_stylizer.seeding import seeded_generator

if TYPE_CHECKING:  # the method takes its config as a plain object; only the type comes from there
    from gan_stylizer.config.schema import TrainConfig


# A training checkpoint's layout and the training it continues: 2 since the dial's settings were
# built in (gan_stylizer.dial); a format-1 run was trained with options that no longer exist and
# is not resumed (its generator still stylizes).
CHECKPOINT_FORMAT = 2


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses; the message says what to change."""


def random_style_crops(
    style_image: torch.Tensor,
    n: int,
    size: int,
    scale: tuple[float, float],
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """n random crops [n,3,size,size] of RGB [0,1] [1,3,H,W], each at a random scale in
    `scale` (upscaled when the painting would be smaller than the crop) and randomly flipped.
    The draws come from `gen` (a CPU generator) or torch's global RNG."""
    h, w = style_image.shape[-2:]
    crops = []
    for _ in range(n):
        s = float(torch.empty(()).uniform_(scale[0], scale[1], generator=gen))
        s = max(s, size / min(h, w))
        sh, sw = max(size, round(h * s)), max(size, round(w * s))
        scaled = F.interpolate(
            style_image, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False
        )
        top = int(torch.randint(0, sh - size + 1, (), generator=gen))
        left = int(torch.randint(0, sw - size + 1, (), generator=gen))
        crop = scaled[..., top : top + size, left : left + size]
        crops.append(crop.flip(-1) if torch.rand((), generator=gen) < 0.5 else crop)
    return torch.cat(crops).clamp(0, 1)


class StylizerSystem(L.LightningModule):
    """G, G_ema and D as submodules (checkpointed); the VGG criterion and the style image as
    non-persistent state (rebuilt from the config, never checkpointed)."""

    def __init__(
        self,
        cfg: TrainConfig,
        criterion: PerceptualCriterion,
        style_image: torch.Tensor,
        val_images: list[torch.Tensor] | None = None,
        style_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        # The factor on the style term (training.calibration: the painting's pull): α·scale.
        self.style_scale = float(style_scale)
        # A plain dict: checkpoints must load with torch.load(weights_only=True).
        self.save_hyperparameters({"config": to_plain(cfg), "style_scale": self.style_scale})
        plain_model = to_plain(cfg.model)
        self.generator = build_generator(plain_model)
        self.g_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        d = cfg.model.discriminator
        self.discriminator = PatchDiscriminator(channels=d.channels, n_layers=d.n_layers)
        self.criterion = criterion
        criterion.set_style(style_image)
        self.register_buffer("style_image", style_image, persistent=False)
        self.val_images = val_images or []
        self.g_step = 0
        self.nonfinite_total = 0
        self._nonfinite_streak = 0
        self._last_nonfinite = ""

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        """Inference with the EMA generator: RGB [0,1] [B,3,H,W] -> same shape."""
        return self.g_ema(content)

    def configure_optimizers(self):
        t = self.cfg.trainer
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=t.lr_g, betas=tuple(t.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=t.lr_d, betas=tuple(t.betas))
        return opt_g, opt_d

    # ---- one batch -------------------------------------------------------------------------

    def lr_factor(self) -> float:
        """The learning rates' share of trainer.lr_g/lr_d at this generator step: 1, then over
        the last trainer.lr_decay_steps steps linearly down to 1/lr_decay_steps at the final
        one. A function of g_step alone, so a resumed run sets what an uninterrupted one had."""
        t = self.cfg.trainer
        if t.lr_decay_steps <= 0:
            return 1.0
        return min(1.0, max(t.steps - self.g_step, 1) / t.lr_decay_steps)

    def training_step(self, content: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        factor = self.lr_factor()
        for opt, base in ((opt_g, self.cfg.trainer.lr_g), (opt_d, self.cfg.trainer.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor
        loss_cfg = self.cfg.loss
        warming_up = self.g_step < self.cfg.trainer.warmup_steps
        adversarial = loss_cfg.adv > 0 and not warming_up

        skipped_before = self.nonfinite_total
        strength = self._sample_strength(content.shape[0]) if self.generator.conditioned else None
        # s lies up to dial.MARGIN beyond [0, 1], which inference refuses.
        stylized = self.generator(content, strength, check_range=False)
        logs: dict[str, torch.Tensor] = {}
        if adversarial:
            logs |= self._discriminator_step(opt_d, content.shape[0], stylized.detach())

        with self.toggled_optimizer(opt_g):
            logs |= self._generator_step(
                opt_g, content, stylized, adversarial, warming_up, strength
            )
        self.g_step += 1
        self._count_streak(skipped=self.nonfinite_total > skipped_before)
        self.log_dict({k: v.float() for k, v in logs.items()}, on_step=True)
        self.log("train/nonfinite_skipped", float(self.nonfinite_total), on_step=True)
        self.log("g_step", float(self.g_step), on_step=True, prog_bar=True)
        if self.cfg.trainer.lr_decay_steps:
            self.log("train/lr_factor", factor, on_step=True)

    def _sample_strength(self, batch_size: int) -> torch.Tensor:
        """One style strength per image (dial.sample_strengths), drawn per (seed, rank, step)
        like the data, so a resumed run draws what an uninterrupted one would."""
        gen = seeded_generator(self.cfg.seed, "strength", self.global_rank, self.g_step)
        return sample_strengths(batch_size, gen).to(self.device)

    def _generator_step(
        self,
        opt_g,
        content: torch.Tensor,
        stylized: torch.Tensor,
        adversarial: bool,
        warming_up: bool,
        strength: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Perceptual and adversarial gradients are taken w.r.t. the stylized pixels, balanced
        there, and pushed through G in one backward pass:
            ∂L_G/∂y = ∂(α·L_style + β·L_content + tv·L_tv)/∂y + adv·λ·∂L_adv/∂y,
            λ = ‖∂L_perceptual/∂y‖ / ‖∂L_adv/∂y‖ (not differentiated),
        so loss.adv is the adversarial gradient's share relative to the perceptual one: a
        dimensionless weight that holds across α, β, image sizes and D's current scale, where
        the raw L_adv (order 1) and the seed's L_style (order 1e10) differ by ten magnitudes.
        The same idea as VQGAN's adaptive weight (Esser et al. 2021), measured at the output.
        A conditioned generator takes λ per image (gan_stylizer.dial)."""
        loss_cfg = self.cfg.loss
        pixels = stylized.detach().requires_grad_(True)
        l_perceptual, logs = self._perceptual_loss(pixels, content, warming_up, strength)
        if not self._finite(l_perceptual, "generator perceptual"):
            return logs
        (grad,) = torch.autograd.grad(l_perceptual, pixels)
        l_adv = lam = l_perceptual.new_zeros(())
        if adversarial:
            l_adv = g_adv_loss(loss_cfg.adv_type, self.discriminator(pixels))
            (grad_adv,) = torch.autograd.grad(l_adv, pixels)
            weight, lam = adversarial_weights(grad, grad_adv, per_image=strength is not None)
            grad = grad + loss_cfg.adv * weight * grad_adv
        logs |= {
            "train/g_adv": l_adv.detach(),
            "train/g_adv_lambda": lam.detach(),
            "train/g_total": (l_perceptual + loss_cfg.adv * lam * l_adv).detach(),
        }
        if not self._finite(grad.norm(), "generator output gradient"):
            return logs
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(stylized, grad)
        if self._clip_and_check(opt_g, self.generator, "generator"):
            opt_g.step()
            self._update_ema()
        else:
            opt_g.zero_grad(set_to_none=True)
        return logs

    def _perceptual_loss(
        self,
        pixels: torch.Tensor,
        content: torch.Tensor,
        warming_up: bool,
        strength: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """α·L_style + β·L_content + tv·L_tv of the stylized pixels (α = 0 while warming up),
        and its terms for the logs. A conditioned batch: image i at its own α_i, its pull
        balanced (dial.balance_pull)."""
        loss_cfg = self.cfg.loss
        target = self.criterion.content_features(content)
        if strength is None:
            l_tv = tv_loss(pixels) if loss_cfg.tv > 0 else pixels.new_zeros((), dtype=torch.float32)
            l_style, l_content = self.criterion(pixels, target)
            alpha = 0.0 if warming_up else self.style_scale * loss_cfg.alpha
            l_perceptual = alpha * l_style + loss_cfg.beta * l_content + loss_cfg.tv * l_tv
        else:
            per_style, per_content = self.criterion(pixels, target, reduce=False)
            per_tv = (
                tv_loss(pixels, reduce=False) if loss_cfg.tv > 0 else torch.zeros_like(per_style)
            )
            l_style, l_content, l_tv = per_style.mean(), per_content.mean(), per_tv.mean()
            a_min, a_max = (self.style_scale * a for a in (loss_cfg.alpha_min, loss_cfg.alpha_max))
            alphas = strength_to_alpha(strength.float(), a_min, a_max)
            styled = 0.0 * per_style if warming_up else alphas * per_style
            per_image = styled + loss_cfg.beta * per_content + loss_cfg.tv * per_tv
            l_perceptual = balance_pull(per_image, alphas, a_min, a_max)
            l_perceptual = l_perceptual.mean()
        logs = {
            "train/g_style": l_style.detach(),
            "train/g_content": l_content.detach(),
            "train/g_tv": l_tv.detach(),
        }
        return l_perceptual, logs

    def _discriminator_step(
        self, opt_d, batch_size: int, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        loss_cfg = self.cfg.loss
        # Seeded by step and rank: each rank draws its own crops, and a resumed run the same
        # crops as an uninterrupted one.
        real = random_style_crops(
            self.style_image,
            batch_size,
            fake.shape[-1],
            tuple(self.cfg.model.discriminator.crop_scale),
            gen=seeded_generator(self.cfg.seed, "style_crops", self.global_rank, self.g_step),
        )
        with self.toggled_optimizer(opt_d):
            r1 = loss_cfg.r1 > 0
            real.requires_grad_(r1)
            real_logits = self.discriminator(real)
            fake_logits = self.discriminator(fake)
            l_d = d_loss(loss_cfg.adv_type, real_logits, fake_logits)
            l_r1 = r1_penalty(real_logits, real) if r1 else l_d.new_zeros(())
            total = l_d + loss_cfg.r1 * l_r1
            if self._finite(total, "discriminator"):
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(total)
                if self._clip_and_check(opt_d, self.discriminator, "discriminator"):
                    opt_d.step()
                else:
                    opt_d.zero_grad(set_to_none=True)
        return {
            "train/d_loss": l_d.detach(),
            "train/d_r1": l_r1.detach(),
            "train/d_real": real_logits.detach().float().mean(),
            "train/d_fake": fake_logits.detach().float().mean(),
        }

    # ---- guards ------------------------------------------------------------------------------

    def _finite(self, loss: torch.Tensor, what: str) -> bool:
        ok = bool(torch.isfinite(loss).item())
        # Every rank must take the same branch: one rank skipping a backward that the others
        # run would leave them waiting for its gradients forever.
        ok = self.trainer.strategy.reduce_boolean_decision(ok, all=True)
        if ok:
            return True
        self._skip(f"{what} loss is {loss.item()}")
        return False

    def _clip_and_check(self, opt, module: torch.nn.Module, what: str) -> bool:
        """Clip (after backward; bf16/fp32 grads are unscaled) and refuse non-finite gradients."""
        clip = self.cfg.trainer.clip_grad
        params = [p for p in module.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
        if torch.isfinite(norm).item():
            return True
        self._skip(f"{what} gradient norm is {norm.item()}")
        return False

    def _skip(self, reason: str) -> None:
        self.nonfinite_total += 1
        self._last_nonfinite = reason

    def _count_streak(self, skipped: bool) -> None:
        """A batch with any skipped update extends the streak; a clean batch ends it."""
        self._nonfinite_streak = self._nonfinite_streak + 1 if skipped else 0
        limit = self.cfg.trainer.max_nonfinite
        if self._nonfinite_streak >= limit:
            raise TrainingDiverged(
                f"{limit} consecutive steps had non-finite values (last: {self._last_nonfinite}) "
                f"at generator step {self.g_step}; lower trainer.lr_g/lr_d, set "
                f"trainer.clip_grad=1, use trainer.precision=32, or lower loss.adv"
            )

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up of the decay so that the EMA follows closely during the first steps.
        decay = min(self.cfg.trainer.ema_decay, (1 + self.g_step) / (10 + self.g_step))
        for p_ema, p in zip(self.g_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.g_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    # ---- checkpoint state --------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan_stylizer"] = {
            "format": CHECKPOINT_FORMAT,
            "g_step": self.g_step,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_streak": self._nonfinite_streak,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("gan_stylizer", {})
        self.g_step = int(state.get("g_step", 0))
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self._nonfinite_streak = int(state.get("nonfinite_streak", 0))

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.g_step >= self.cfg.trainer.steps:
            self.trainer.should_stop = True
