"""Diffusion4D inference: text / image / static-3D -> orbital video, with 3D-aware guidance.

The generated video is an *orbital* video: frame i is seen from camera i of the dynamic orbit
(azimuth ``start + 360 i / F``) at animation time ``i / (F - 1)``, the layout the model was
fine-tuned on and the one 4D reconstruction expects. Every frame's OpenCV camera-to-world is
fed to the UNet (``camera_c2w``).

Guidance is docs/method.md Eq. 3 (see :mod:`diffusion4d.guidance`)::

    eps = eps_c + w1 (eps_c - eps_uncond) + w2 (eps_c - eps_prior)

where ``eps_c`` sees every given condition, ``eps_uncond`` the dropped ones (empty prompt, null
motion, zero image / static latents) and ``eps_prior`` is the frozen 3D-aware prior conditioned
on the text y and the cameras only, as it was trained: ``prior="separate"`` uses the loaded
``prior_unet`` (training stage 1, the paper's VideoMV), ``prior="self"`` is a variant that uses
this network with m = 0 and the image / static inputs dropped; ``prior="auto"`` (default) picks
``separate`` when the checkpoint carries a prior and ``self`` otherwise.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from diffusion4d.cameras import CameraTrajectory, orbit_trajectory
from diffusion4d.guidance import PRIOR_KINDS, active_branches, guided_prediction, motion_tensor, split_branches
from diffusion4d.models.latents import decode_latents, encode_frames
from diffusion4d.models.text import encode_prompts
from diffusion4d.pipelines.pipeline_output import Diffusion4DPipelineOutput

ImageInput = Union["PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821

# OpenAI CLIP image normalisation (used when an image encoder comes without a feature extractor)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ConditionError(ValueError):
    """A condition the model cannot take (not trained for it), or missing inputs."""


@dataclass
class BranchInputs:
    """The UNet inputs of one guidance branch, each with batch B (None: not used by the model)."""

    encoder_hidden_states: torch.Tensor  # [B, L, D]
    motion_magnitude: torch.Tensor  # [B] (NaN = dropped -> null embedding)
    static_latents: Optional[torch.Tensor] = None  # [B, C, F, h, w]
    image_latents: Optional[torch.Tensor] = None  # [B, C, h, w]
    image_embeds: Optional[torch.Tensor] = None  # [B, L_img, D_img]

    @staticmethod
    def cat(items: Sequence["BranchInputs"]) -> "BranchInputs":
        def _cat(name: str) -> Optional[torch.Tensor]:
            values = [getattr(x, name) for x in items]
            return None if values[0] is None else torch.cat(values, dim=0)

        return BranchInputs(**{name: _cat(name) for name in BranchInputs.__dataclass_fields__})


def _to_frames_tensor(x: Any, name: str) -> torch.Tensor:
    """uint8/float RGB(A) ``[..., H, W, 3|4]`` array, or a float tensor ``[..., 3, H, W]`` in [0, 1]
    -> float32 ``[..., 3, H, W]`` in [0, 1], RGBA composited over white."""
    if isinstance(x, torch.Tensor):
        t = x.detach().float()
        if t.shape[-3] == 4:  # [..., 4, H, W]
            t = t[..., :3, :, :] * t[..., 3:4, :, :] + (1.0 - t[..., 3:4, :, :])
        if t.shape[-3] != 3:
            raise ConditionError(f"{name} tensor must be [..., 3, H, W] in [0, 1], got {tuple(t.shape)}")
        return t
    if not isinstance(x, np.ndarray):  # PIL image (or list of them)
        if isinstance(x, (list, tuple)):
            return torch.stack([_to_frames_tensor(v, name) for v in x])
        x = np.asarray(x.convert("RGBA") if hasattr(x, "convert") else x)
    a = np.asarray(x)
    if a.shape[-1] not in (3, 4):
        raise ConditionError(f"{name} array must be [..., H, W, 3|4], got {a.shape}")
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.shape[-1] == 4:
        a = a[..., :3] * a[..., 3:4] + (1.0 - a[..., 3:4])
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3)))


def _resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[N, 3, H, W]`` -> ``[N, 3, height, width]`` (antialiased bilinear)."""
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


class Diffusion4DPipeline(DiffusionPipeline):
    r"""Generate orbital videos of a 4D asset from text, an image and/or a static orbit.

    Components:
        unet: the 4D-aware :class:`~diffusion4d.models.UNet4DConditionModel`.
        text_encoder, tokenizer: the text stack (``encode_prompts``; ``""`` = unconditional).
        scheduler: the sampler (``make_scheduler("ddim" | "dpm", config)``); a training
            ``DDPMScheduler`` (as the trainer saves it) is replaced by DDIM on the same schedule.
        vae: ``AutoencoderKL`` or None (pixel space, the tiny CPU preset).
        image_encoder, feature_extractor: optional CLIP vision encoder for image tokens.
        prior_unet: optional frozen static 3D prior for ``prior="separate"`` (a
            ``UNet4DConditionModel`` or a plain ``UNet3DConditionModel``).
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->unet->prior_unet->vae"
    _optional_components = ["vae", "image_encoder", "feature_extractor", "prior_unet"]

    def __init__(
        self,
        unet,
        text_encoder,
        tokenizer,
        scheduler,
        vae=None,
        image_encoder=None,
        feature_extractor=None,
        prior_unet=None,
    ):
        super().__init__()
        if type(scheduler).__name__ == "DDPMScheduler":
            # a trainer checkpoint stores its training scheduler: sample with DDIM, the paper's sampler
            from diffusion4d.pipelines.schedulers import make_scheduler

            scheduler = make_scheduler("ddim", scheduler.config)
        self.register_modules(
            unet=unet,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
            vae=vae,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            prior_unet=prior_unet,
        )
        if os.environ.get("DIFFUSION4D_NO_PROGRESS") == "1":
            self.set_progress_bar_config(disable=True)

    # ------------------------------------------------------------------ persistence
    def register_modules(self, **kwargs: Any) -> None:
        """As diffusers', but records our own classes under library ``diffusion4d`` (the
        checkpoint contract) when the package exports them, not under their module path."""
        super().register_modules(**kwargs)
        for name, module in kwargs.items():
            self._normalise_library(name, module)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self.__dict__ and value is not None and hasattr(self, "_internal_dict") and name in self.config:
            self._normalise_library(name, value)

    def _normalise_library(self, name: str, module: Any) -> None:
        entry = self.config.get(name) if hasattr(self, "_internal_dict") else None
        if module is None or not isinstance(entry, (list, tuple)) or entry[0] is None:
            return
        library, class_name = entry
        if isinstance(library, str) and library.startswith("diffusion4d."):
            package = importlib.import_module("diffusion4d")
            if getattr(package, class_name, None) is type(module):
                self.register_to_config(**{name: ("diffusion4d", class_name)})

    # ------------------------------------------------------------------ properties
    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (1 in pixel space)."""
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def use_scheduler(self, name: str) -> None:
        """Swap in sampler ``name`` (``ddim`` | ``dpm``) built from the current noise schedule."""
        from diffusion4d.pipelines.schedulers import make_scheduler

        self.scheduler = make_scheduler(name, self.scheduler.config)

    # ------------------------------------------------------------------ inputs
    def check_inputs(
        self,
        prompt: Optional[Union[str, List[str]]],
        image: Optional[ImageInput],
        static_orbit: Optional[Any],
        motion_magnitude: Optional[Any],
        prior: str,
        prior_guidance_scale: float,
    ) -> None:
        """Raise :class:`ConditionError` for inputs the loaded model cannot take."""
        cfg = self.unet.config
        if prompt is None and image is None and static_orbit is None:
            raise ConditionError("give a prompt, an image or a static orbit")
        if prompt is not None and (self.text_encoder is None or self.tokenizer is None):
            raise ConditionError("this pipeline has no text encoder/tokenizer for the prompt")
        if self.text_encoder is None or self.tokenizer is None:
            raise ConditionError("this pipeline has no text encoder/tokenizer (needed for the cross-attention context)")
        if image is not None and not cfg.get("image_conditioning", False):
            raise ConditionError("this model was not trained for image conditioning (unet image_conditioning=False)")
        if static_orbit is not None and not cfg.get("static_conditioning", False):
            raise ConditionError("this model was not trained for static-3D conditioning (unet static_conditioning=False)")
        if motion_magnitude is not None and not cfg.get("motion_conditioning", False):
            raise ConditionError("this model was not trained with a motion-magnitude condition (motion_conditioning=False)")
        if prior not in PRIOR_KINDS + ("auto",):
            raise ConditionError(f"unknown prior {prior!r}; valid: auto, {', '.join(PRIOR_KINDS)}")
        if prior == "separate" and prior_guidance_scale != 0.0 and self.prior_unet is None:
            raise ConditionError("prior='separate' needs a prior_unet in the checkpoint; use prior='self' or prior_guidance_scale=0")
        if motion_magnitude is not None:
            m = np.asarray(motion_magnitude, dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(m)) or np.any(m < 0):
                raise ConditionError(f"motion_magnitude must be finite and >= 0, got {m.tolist()}")

    def encode_prompt(self, prompt: List[str], device: torch.device) -> torch.Tensor:
        """Prompts -> ``[B, L, D]`` cross-attention context (``""`` = unconditional)."""
        return encode_prompts(self.tokenizer, self.text_encoder, list(prompt), device).to(self.unet.dtype)

    def encode_image_embeds(self, image: torch.Tensor, device: torch.device) -> Optional[torch.Tensor]:
        """``[B, 3, H, W]`` in [0, 1] -> image tokens ``[B, L_img, D_img]`` (None without image encoder)."""
        if self.image_encoder is None:
            return None
        if self.feature_extractor is not None:
            pixels = self.feature_extractor(
                images=[x.permute(1, 2, 0).cpu().numpy() for x in image], return_tensors="pt", do_rescale=False
            ).pixel_values
        else:
            size = int(self.image_encoder.config.image_size)
            pixels = _resize(image, size, size)
            mean = torch.tensor(_CLIP_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(_CLIP_STD).view(1, 3, 1, 1)
            pixels = (pixels.cpu() - mean) / std
        out = self.image_encoder(pixels.to(device=device, dtype=self.image_encoder.dtype))
        embeds = getattr(out, "image_embeds", None)
        embeds = embeds[:, None] if embeds is not None else out.last_hidden_state
        return embeds.to(self.unet.dtype)

    def prepare_cameras(self, num_frames: int, height: int, width: int, elevation: float, start_azimuth: float, radius: float) -> CameraTrajectory:
        """The dynamic orbit of the generated video (frame i = camera i at time i / (F - 1))."""
        return orbit_trajectory(
            "dynamic", num_frames, start_azimuth=start_azimuth, elevation=elevation, radius=radius, width=width, height=height
        )

    # ------------------------------------------------------------------ denoiser
    @staticmethod
    def _unet_kwargs(model, inputs: BranchInputs, camera_c2w: torch.Tensor, motion_override: Optional[float] = None) -> Dict[str, Any]:
        """The forward keyword arguments ``model`` understands, from ``inputs``."""
        kwargs: Dict[str, Any] = {"encoder_hidden_states": inputs.encoder_hidden_states}
        if not hasattr(model.config, "camera_conditioning"):  # a plain UNet3DConditionModel prior
            return kwargs
        cfg = model.config
        if cfg.get("motion_conditioning", False):
            m = inputs.motion_magnitude
            kwargs["motion_magnitude"] = m if motion_override is None else torch.full_like(m, motion_override)
        if cfg.get("camera_conditioning", False):
            kwargs["camera_c2w"] = camera_c2w
        if cfg.get("static_conditioning", False):
            kwargs["static_latents"] = inputs.static_latents
        if cfg.get("image_conditioning", False):
            kwargs["image_latents"] = inputs.image_latents
        if inputs.image_embeds is not None and cfg.get("image_conditioning", False):
            kwargs["image_embeds"] = inputs.image_embeds
        return kwargs

    def resolve_prior(self, prior: str) -> str:
        """``"auto"`` -> ``"separate"`` when a ``prior_unet`` is loaded, else ``"self"``."""
        if prior == "auto":
            return "separate" if self.prior_unet is not None else "self"
        return prior

    def predict(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        branches: Dict[str, BranchInputs],
        camera_c2w: torch.Tensor,
        guidance_scale: float,
        prior_guidance_scale: float,
        prior: str = "self",
        batch_branches: bool = True,
    ) -> torch.Tensor:
        """The guided model output (Eq. 3) for model-scaled latents ``[B, C, F, h, w]`` at step ``t``.

        ``branches`` maps ``cond``/``uncond``/``prior`` to their inputs (``prior``: the text of
        ``cond``, every other condition dropped, see :meth:`prior_inputs`). ``prior="self"`` runs
        the prior branch on this network with m = 0, ``"separate"`` on ``prior_unet`` (which
        takes only the text and the cameras). Branches that run on the same network are
        concatenated along the batch axis into one forward pass when ``batch_branches``.
        """
        needed = active_branches(guidance_scale, prior_guidance_scale)
        prior = self.resolve_prior(prior)
        prior_in = branches.get("prior") or self.prior_inputs(branches["cond"], branches["uncond"])
        # (model, motion override) per branch: prior="self" is the same network with m = 0
        plan = {
            "cond": (self.unet, None, branches["cond"]),
            "uncond": (self.unet, None, branches.get("uncond")),
            "prior": (self.unet, 0.0, prior_in) if prior == "self" else (self.prior_unet, 0.0, prior_in),
        }
        preds: Dict[str, torch.Tensor] = {}
        if batch_branches:
            # the unet's branches in one forward; the prior's m = 0 goes in as data, so it batches too
            same = [b for b in needed if plan[b][0] is self.unet]
            inputs = []
            for b in same:
                _, override, x = plan[b]
                if override is not None:
                    x = replace(x, motion_magnitude=torch.full_like(x.motion_magnitude, override))
                inputs.append(x)
            n = len(same)
            out = self.unet(
                torch.cat([latents] * n),
                t,
                **self._unet_kwargs(self.unet, BranchInputs.cat(inputs), torch.cat([camera_c2w] * n)),
            ).sample
            preds.update(split_branches(out, same))
            rest = [b for b in needed if b not in same]
        else:
            rest = needed
        for b in rest:
            model, override, x = plan[b]
            preds[b] = model(latents, t, **self._unet_kwargs(model, x, camera_c2w, override)).sample
        return guided_prediction(
            preds["cond"], preds.get("uncond"), preds.get("prior"), guidance_scale, prior_guidance_scale
        )

    @staticmethod
    def prior_inputs(cond: BranchInputs, uncond: BranchInputs) -> BranchInputs:
        """The prior branch's inputs: eps_bar(z_t, y, t) sees the text y of ``cond`` and nothing
        else of it (the image / static inputs and image tokens are those of ``uncond``, i.e.
        dropped; the motion magnitude is set to 0 by the caller for the self variant)."""
        return replace(uncond, encoder_hidden_states=cond.encoder_hidden_states, motion_magnitude=torch.zeros_like(cond.motion_magnitude))

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        image: Optional[ImageInput] = None,
        static_orbit: Optional[Any] = None,
        motion_magnitude: Optional[Union[float, Sequence[float], torch.Tensor]] = None,
        num_frames: Optional[int] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
        prior_guidance_scale: float = 0.5,
        prior: str = "auto",
        num_videos_per_prompt: int = 1,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        elevation: float = 0.0,
        start_azimuth: float = 0.0,
        radius: float = 2.0,
        batch_branches: bool = True,
    ) -> Union[Diffusion4DPipelineOutput, tuple]:
        r"""Generate orbital videos.

        Args:
            prompt: text (or a list: one video per prompt). None -> the empty prompt.
            image: the first view (front, at ``start_azimuth``): PIL image, uint8/float array
                ``[H, W, 3|4]`` or tensor ``[3, H, W]`` / ``[B, 3, H, W]`` in [0, 1]; RGBA is
                composited over white. Prepare arbitrary photos with
                :func:`diffusion4d.image_prep.prepare_image` (recentre + rescale like training data).
                Needs ``unet.config.image_conditioning``.
            static_orbit: the static (frozen-time) orbit of the asset from the same cameras:
                uint8/float ``[F, H, W, 3|4]`` or a tensor ``[F, 3, H, W]`` / ``[B, F, 3, H, W]`` in
                [0, 1]. Needs ``unet.config.static_conditioning``; sets ``num_frames``.
            motion_magnitude: m (mean form, as curation records it), a float or one per video;
                None -> the null motion embedding (motion left to the model).
            num_frames, height, width: default to the model's training size
                (``unet.config.num_frames``, ``sample_size * vae_scale_factor``).
            num_inference_steps: sampler steps (paper: DDIM 50).
            guidance_scale: w1 of Eq. 3 (paper 7.0).
            prior_guidance_scale: w2 of Eq. 3 (paper 0.5); 0 skips the prior branch.
            prior: ``"auto"`` (``separate`` when the checkpoint has a ``prior_unet``, else ``self``),
                ``"separate"`` (the frozen stage-1 ``prior_unet``, given text + cameras) or
                ``"self"`` (this network with m = 0 and the image / static inputs dropped).
            num_videos_per_prompt: videos per prompt.
            generator: torch generator(s) for the initial noise (one per video for per-video seeds).
            latents: initial noise ``[B, C, F, h, w]`` (overrides ``generator``).
            output_type: ``"np"``, ``"pt"``, ``"pil"`` or ``"latent"``.
            return_dict: return a :class:`Diffusion4DPipelineOutput` (else ``(frames, cameras)``).
            elevation, start_azimuth, radius: the orbit (degrees, degrees, distance).
            batch_branches: evaluate the guidance branches on the same network in one batched
                forward (faster; set False to save memory).

        Returns:
            :class:`Diffusion4DPipelineOutput` with ``frames``, ``cameras`` and ``timings``.

        Example::

            pipe = Diffusion4DPipeline.from_pretrained("checkpoints/tiny")
            out = pipe("a robot waving", motion_magnitude=0.02, num_inference_steps=50)
            frames, cameras = out.frames[0], out.cameras   # [F, H, W, 3], CameraTrajectory
        """
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        # 0. validate
        self.check_inputs(prompt, image, static_orbit, motion_magnitude, prior, prior_guidance_scale)
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"unknown output_type {output_type!r}; valid: np, pt, pil, latent")
        device = self._execution_device
        dtype = self.unet.dtype
        cfg = self.unet.config

        # 1. batch size, frames, size
        prompts = [prompt] if isinstance(prompt, str) or prompt is None else list(prompt)
        prompts = [p if p is not None else "" for p in prompts]
        static = None
        if static_orbit is not None:
            static = _to_frames_tensor(static_orbit, "static_orbit")
            static = static[None] if static.dim() == 4 else static  # [B?, F, 3, H, W]
            if num_frames is not None and num_frames != static.shape[1]:
                raise ConditionError(f"static_orbit has {static.shape[1]} frames but num_frames={num_frames}")
            num_frames = static.shape[1]
        cond_image = None
        if image is not None:
            cond_image = _to_frames_tensor(image, "image")
            cond_image = cond_image[None] if cond_image.dim() == 3 else cond_image  # [B?, 3, H, W]
        num_frames = int(num_frames or cfg.get("num_frames", 16))
        sample_size = cfg.get("sample_size")
        if (height is None or width is None) and sample_size is None:
            raise ConditionError("the model config has no sample_size: pass height and width")
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        height = int(height or sample_size * self.vae_scale_factor)
        width = int(width or sample_size * self.vae_scale_factor)
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ConditionError(f"height and width must be multiples of {self.vae_scale_factor}")
        batch = len(prompts) * num_videos_per_prompt
        prompts = [p for p in prompts for _ in range(num_videos_per_prompt)]

        def _expand(x: torch.Tensor, what: str) -> torch.Tensor:
            if x.shape[0] == batch:
                return x
            if x.shape[0] == 1:
                return x.expand(batch, *x.shape[1:])
            raise ConditionError(f"{what} has batch {x.shape[0]}, expected 1 or {batch}")

        # 2. encode the conditions of the cond and uncond branches
        text_cond = self.encode_prompt(prompts, device)
        text_uncond = self.encode_prompt([""] * batch, device)
        m = motion_tensor(motion_magnitude, batch, device)
        cond = BranchInputs(text_cond, m)
        uncond = BranchInputs(text_uncond, torch.full_like(m, float("nan")))
        latent_h, latent_w = height // self.vae_scale_factor, width // self.vae_scale_factor
        channels = int(cfg.get("out_channels"))
        shape = (batch, channels, num_frames, latent_h, latent_w)
        if cfg.get("static_conditioning", False):
            if static is not None:
                frames = _resize(static.flatten(0, 1), height, width).view(static.shape[0], num_frames, 3, height, width)
                z_static = encode_frames(self.vae, _expand(frames, "static_orbit").to(device=device, dtype=dtype))
                cond.static_latents = z_static.to(dtype)
            else:
                cond.static_latents = torch.zeros(shape, device=device, dtype=dtype)
            uncond.static_latents = torch.zeros_like(cond.static_latents)
        if cfg.get("image_conditioning", False):
            if cond_image is not None:
                first = _expand(_resize(cond_image, height, width), "image").to(device=device, dtype=dtype)
                cond.image_latents = encode_frames(self.vae, first[:, None])[:, :, 0].to(dtype)
                cond.image_embeds = self.encode_image_embeds(first, device)
            else:
                cond.image_latents = torch.zeros((batch, channels, latent_h, latent_w), device=device, dtype=dtype)
            uncond.image_latents = torch.zeros_like(cond.image_latents)
            if cond.image_embeds is not None:
                uncond.image_embeds = torch.zeros_like(cond.image_embeds)

        # 3. cameras of the dynamic orbit, fed to every branch
        cameras = self.prepare_cameras(num_frames, height, width, elevation, start_azimuth, radius)
        camera_c2w = torch.as_tensor(cameras.c2w, dtype=torch.float32, device=device)[None].expand(batch, -1, -1, -1)
        timings["encode"] = time.perf_counter() - start

        # 4. timesteps and initial noise
        start = time.perf_counter()
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ConditionError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma

        # 5. denoising loop with 3D-aware guidance
        branches = {"cond": cond, "uncond": uncond, "prior": self.prior_inputs(cond, uncond)}
        with self.progress_bar(total=len(timesteps)) as bar:
            for t in timesteps:
                model_input = self.scheduler.scale_model_input(latents, t)
                pred = self.predict(
                    model_input, t, branches, camera_c2w, guidance_scale, prior_guidance_scale, prior, batch_branches
                )
                latents = self.scheduler.step(pred, t, latents).prev_sample
                bar.update()
        timings["denoise"] = time.perf_counter() - start
        timings["steps"] = float(len(timesteps))

        # 6. decode and format
        start = time.perf_counter()
        if output_type == "latent":
            frames: Any = latents
        else:
            video = decode_latents(self.vae, latents)  # [B, F, 3, H, W] in [0, 1]
            if output_type == "pt":
                frames = video
            else:
                arr = video.permute(0, 1, 3, 4, 2).cpu().float().numpy()  # [B, F, H, W, 3]
                if output_type == "np":
                    frames = arr
                else:
                    from PIL import Image

                    frames = [[Image.fromarray((f * 255.0).round().astype(np.uint8)) for f in clip] for clip in arr]
        timings["decode"] = time.perf_counter() - start
        self.maybe_free_model_hooks()

        if not return_dict:
            return frames, cameras
        return Diffusion4DPipelineOutput(frames=frames, cameras=cameras, timings=timings)


__all__ = ["BranchInputs", "ConditionError", "Diffusion4DPipeline"]
