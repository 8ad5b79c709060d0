"""The 4D-aware video UNet (Diffusion4D): ModelScope-T2V's 3D UNet plus 4D conditioning.

:class:`UNet4DConditionModel` subclasses diffusers' :class:`UNet3DConditionModel` (the
ModelScope text-to-video architecture that VideoMV and the paper fine-tune), so the base's
state-dict keys load unchanged, and adds:

* motion-magnitude embedding (docs/method.md Eq. 1/2): sinusoidal features of m -> 2-layer MLP with a
  zero-initialised output layer, added to the timestep embedding; a learned null embedding
  (init 0) when m is None or NaN (condition dropped for classifier-free guidance);
* per-frame camera embedding: the flattened 3x4 OpenCV c2w of each frame -> MLP (zero-init
  output), added to that frame's timestep embedding;
* optional pooled-text embedding: the mean caption token embedding -> MLP (zero-init output),
  added to the timestep embedding, a global text path beside cross-attention (the tiny preset);
* static-3D conditioning: static-orbit latents concatenated to the input channels;
* image conditioning (as I2VGen-XL): first-view latents broadcast over frames and concatenated
  to the input channels; optional image embeddings appended to the cross-attention context.

The extra ``conv_in`` input channels are zero-initialised, so with every new module at its
initial value the output equals the base UNet's output (tested), whatever conditioning is
passed, except ``image_embeds``, which adds cross-attention tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_3d_condition import UNet3DConditionModel, UNet3DConditionOutput

from diffusion4d.errors import UserError
from diffusion4d.models.embeddings import CameraEmbedding, FrameTimeEmbedding, MotionMagnitudeEmbedding, PooledTextEmbedding

# config keys the 4D model adds on top of UNet3DConditionModel's
NEW_OPTIONS = (
    "num_frames",
    "motion_conditioning",
    "motion_feature_dim",
    "motion_scale",
    "camera_conditioning",
    "frame_time_conditioning",
    "frame_time_motion_reference",
    "frame_time_motion_anchor",
    "text_pooled_conditioning",
    "static_conditioning",
    "image_conditioning",
    "image_embed_dim",
)


def motion_gate(motion_magnitude: Optional[torch.Tensor], batch: int, reference: float, device: torch.device) -> torch.Tensor:
    """``[B]`` factors ``m / reference`` of the frame-time embedding; NaN entries (a dropped m) and
    ``motion_magnitude=None`` give 1."""
    if motion_magnitude is None:
        return torch.ones(batch, device=device)
    m = torch.as_tensor(motion_magnitude, device=device, dtype=torch.float32).reshape(-1)
    if m.numel() == 1 and batch > 1:
        m = m.expand(batch)
    return torch.where(torch.isnan(m), torch.ones_like(m), m / float(reference))


#: what the motion gate of the frame-time embedding scales (see ``frame_time_motion_anchor``)
FRAME_TIME_ANCHORS = ("zero", "first")


def check_frame_time_anchor(anchor: str) -> None:
    if anchor not in FRAME_TIME_ANCHORS:
        raise ValueError(f"frame_time_motion_anchor must be one of {FRAME_TIME_ANCHORS}, got {anchor!r}")


def gate_frame_time(frame_time: torch.Tensor, gate: torch.Tensor, anchor: str) -> torch.Tensor:
    """Scale ``[B, F, D]`` frame-time embeddings by the ``[B]`` gate: ``"zero"`` scales each embedding,
    ``"first"`` each frame's difference to frame 0 (``e_0 + g (e_i - e_0)``)."""
    check_frame_time_anchor(anchor)
    g = gate[:, None, None]
    if anchor == "zero":
        return frame_time * g
    first = frame_time[:, :1]
    return first + g * (frame_time - first)


class UNet4DConditionModel(UNet3DConditionModel):
    r"""ModelScope-T2V 3D UNet with motion-magnitude, camera, static-3D and image conditioning.

    Args (in addition to :class:`UNet3DConditionModel`'s; ``in_channels`` is the number of latent
    channels of ``sample``, ``conv_in`` takes ``in_channels * (1 + static + image)``):
        num_frames: frames per clip the model is trained on (read by the pipeline).
        motion_conditioning: add the motion-magnitude embedding.
        motion_feature_dim: number of sinusoidal features of m.
        motion_scale: m is multiplied by this before the sinusoidal features.
        camera_conditioning: add the per-frame camera embedding.
        frame_time_conditioning: add the per-frame animation-time embedding (frame i at i / (F - 1)).
        frame_time_motion_reference: when set, each clip's frame-time embedding is multiplied by
            ``m / frame_time_motion_reference`` (a dropped or missing m: by 1), so that m = 0 gives
            every frame the same instant and the embedding's size follows the requested motion.
        frame_time_motion_anchor: what the gate scales. ``"zero"``: the whole embedding (m = 0: no
            frame-time signal at all); ``"first"``: each frame's difference to the first frame's
            embedding (m = 0: every frame at the first frame's instant, and the first frame's
            conditioning is the same at every m).
        text_pooled_conditioning: add the mean caption embedding to the time embedding (a global
            text path; off in the real presets, whose base model has none).
        static_conditioning: concatenate static-orbit latents to the input.
        image_conditioning: concatenate first-view latents (broadcast over frames) to the input.
        image_embed_dim: width of ``image_embeds``; when set and different from
            ``cross_attention_dim``, a linear projection maps them to it.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: Optional[int] = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: Tuple[str, ...] = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types: Tuple[str, ...] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels: Tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: Optional[int] = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: Union[int, Tuple[int, ...]] = 64,
        num_attention_heads: Optional[Union[int, Tuple[int, ...]]] = None,
        time_cond_proj_dim: Optional[int] = None,
        num_frames: int = 16,
        motion_conditioning: bool = True,
        motion_feature_dim: int = 256,
        motion_scale: float = 1000.0,
        camera_conditioning: bool = True,
        frame_time_conditioning: bool = False,
        frame_time_motion_reference: Optional[float] = None,
        frame_time_motion_anchor: str = "zero",
        text_pooled_conditioning: bool = False,
        static_conditioning: bool = False,
        image_conditioning: bool = False,
        image_embed_dim: Optional[int] = None,
    ):
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            time_cond_proj_dim=time_cond_proj_dim,
        )
        time_embed_dim = block_out_channels[0] * 4
        extra = in_channels * (int(static_conditioning) + int(image_conditioning))
        if extra:
            base_conv = self.conv_in
            self.conv_in = nn.Conv2d(
                in_channels + extra, block_out_channels[0], kernel_size=base_conv.kernel_size, padding=base_conv.padding
            )
            with torch.no_grad():
                self.conv_in.weight.zero_()
                self.conv_in.weight[:, :in_channels].copy_(base_conv.weight)
                self.conv_in.bias.copy_(base_conv.bias)
        self.motion_embedding = (
            MotionMagnitudeEmbedding(time_embed_dim, motion_feature_dim, motion_scale) if motion_conditioning else None
        )
        self.camera_embedding = CameraEmbedding(time_embed_dim) if camera_conditioning else None
        check_frame_time_anchor(frame_time_motion_anchor)
        self.frame_time_embedding = FrameTimeEmbedding(time_embed_dim) if frame_time_conditioning else None
        self.text_pooled_embedding = PooledTextEmbedding(cross_attention_dim, time_embed_dim) if text_pooled_conditioning else None
        self.image_embeds_proj = (
            nn.Linear(image_embed_dim, cross_attention_dim)
            if image_embed_dim is not None and image_embed_dim != cross_attention_dim
            else None
        )
        self.gradient_checkpointing = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_base(
        cls, id_or_path: Union[str, os.PathLike], subfolder: Optional[str] = "unet", **new_options: Any
    ) -> "UNet4DConditionModel":
        """Load a ModelScope-T2V-layout ``UNet3DConditionModel`` and add the 4D modules.

        Args:
            id_or_path: hub id (e.g. ``ali-vilab/text-to-video-ms-1.7b``) or local folder: a
                diffusers pipeline folder (its ``unet/`` is used) or a UNet folder.
            subfolder: the UNet's subfolder in a pipeline folder (ignored when absent locally).
            **new_options: the 4D options (``NEW_OPTIONS``), e.g. ``static_conditioning=True``.

        Returns:
            The 4D UNet whose base weights are the checkpoint's and whose new modules are at
            their initial (output-preserving) values.

        Raises:
            UserError: the checkpoint is missing, or is not a ``UNet3DConditionModel`` (an
                ``I2VGenXLUNet`` checkpoint is refused with an explanation).
        """
        unknown = sorted(set(new_options) - set(NEW_OPTIONS))
        if unknown:
            raise ValueError(f"unknown 4D option(s) {unknown}; valid: {', '.join(NEW_OPTIONS)}")
        path = Path(id_or_path)
        loader = UNet3DConditionModel
        if path.exists():
            if subfolder and not (path / subfolder / "config.json").is_file():
                subfolder = None
            config_file = path / (subfolder or "") / "config.json"
            if not config_file.is_file():
                raise UserError(f"no UNet config.json in {path} (expected {path}/unet/config.json or {path}/config.json)")
            class_name = json.loads(config_file.read_text()).get("_class_name")
            _check_base_class(class_name, str(id_or_path))
            if class_name == cls.__name__:  # a Diffusion4D checkpoint (e.g. stage 1, the 3D prior): keep its 4D modules
                loader = cls
        try:
            base = loader.from_pretrained(str(id_or_path), subfolder=subfolder)
        except (OSError, EnvironmentError, ValueError) as err:
            raise UserError(
                f"cannot load the base video UNet from {id_or_path!r} ({type(err).__name__}): download the diffusers "
                f"checkpoint (e.g. ali-vilab/text-to-video-ms-1.7b) to a local folder and pass its path"
            ) from None
        _check_base_class(type(base).__name__, str(id_or_path))
        return cls.from_base_model(base, **new_options)

    @classmethod
    def from_base_model(cls, base: UNet3DConditionModel, **new_options: Any) -> "UNet4DConditionModel":
        """Wrap an in-memory ``UNet3DConditionModel`` (its weights are copied) with the 4D modules.

        ``base`` may itself be a :class:`UNet4DConditionModel` (stage 2 starting from the stage-1
        3D prior): its 4D options are the defaults ``new_options`` override, the 4D modules both
        models have (e.g. the camera embedding) keep their trained weights, and ``conv_in`` keeps
        every input-channel group (sample, static, image) the two share; new groups start at 0.
        """
        base_config = {k: v for k, v in dict(base.config).items() if not k.startswith("_")}
        model = cls(**{**base_config, **new_options})
        state = base.state_dict()
        conv_w = state.pop("conv_in.weight")
        own = model.state_dict()
        new_prefixes = ("motion_embedding.", "camera_embedding.", "frame_time_embedding.", "text_pooled_embedding.", "image_embeds_proj.", "conv_in.weight")
        # 4D modules of a 4D base that this model was built without are left behind
        state = {k: v for k, v in state.items() if k in own or not k.startswith(new_prefixes)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"base checkpoint has weights the 4D UNet lacks: {unexpected[:5]}")
        stray = [k for k in missing if not k.startswith(new_prefixes)]
        if stray:
            raise ValueError(f"base checkpoint lacks weights: {stray[:5]}")
        with torch.no_grad():
            model.conv_in.weight.zero_()
            ours, theirs = _channel_groups(model.config), _channel_groups(base.config)
            c = model.config.in_channels
            for group in ours:
                if group in theirs:
                    i, j = ours.index(group) * c, theirs.index(group) * c
                    model.conv_in.weight[:, i : i + c].copy_(conv_w[:, j : j + c])
        return model if base.dtype == model.dtype else model.to(base.dtype)

    # ------------------------------------------------------------------ forward
    def _block(self, block: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False, **kwargs)
        return block(*args, **kwargs)

    def _input_channels(
        self, sample: torch.Tensor, static_latents: Optional[torch.Tensor], image_latents: Optional[torch.Tensor]
    ) -> torch.Tensor:
        parts = [sample]
        if self.config.static_conditioning:
            if static_latents is None:
                static_latents = torch.zeros_like(sample)
            elif static_latents.shape != sample.shape:
                raise ValueError(f"static_latents {tuple(static_latents.shape)} must match sample {tuple(sample.shape)}")
            parts.append(static_latents.to(sample.dtype))
        elif static_latents is not None:
            raise ValueError("static_latents given but the model was built with static_conditioning=False")
        if self.config.image_conditioning:
            if image_latents is None:
                image = torch.zeros_like(sample)
            else:
                b, c, _, h, w = sample.shape
                if image_latents.shape != (b, c, h, w):
                    raise ValueError(f"image_latents must be [B, C, H, W] = {(b, c, h, w)}, got {tuple(image_latents.shape)}")
                image = image_latents.to(sample.dtype)[:, :, None].expand_as(sample)
            parts.append(image)
        elif image_latents is not None:
            raise ValueError("image_latents given but the model was built with image_conditioning=False")
        return torch.cat(parts, dim=1) if len(parts) > 1 else sample

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, float, int],
        encoder_hidden_states: torch.Tensor,
        motion_magnitude: Optional[torch.Tensor] = None,
        camera_c2w: Optional[torch.Tensor] = None,
        static_latents: Optional[torch.Tensor] = None,
        image_latents: Optional[torch.Tensor] = None,
        image_embeds: Optional[torch.Tensor] = None,
        cross_attention_kwargs: Optional[Dict[str, Any]] = None,
        return_dict: bool = True,
    ) -> Union[UNet3DConditionOutput, Tuple[torch.Tensor]]:
        """Predict the noise (or v) for a video.

        Args:
            sample: noisy latents ``[B, C, F, H, W]``.
            timestep: ``[B]`` or a scalar.
            encoder_hidden_states: text embeddings ``[B, L, D]``.
            motion_magnitude: ``[B]`` (mean-form m); None or NaN entries -> learned null embedding.
            camera_c2w: ``[B, F, 4, 4]`` OpenCV camera-to-world; None -> no camera embedding.
            static_latents: ``[B, C, F, H, W]`` (static_conditioning only); None -> zeros.
            image_latents: ``[B, C, H, W]`` first view (image_conditioning only); None -> zeros.
            image_embeds: ``[B, L_img, D_img]`` appended to the cross-attention context.
            cross_attention_kwargs: passed to the attention processors.
            return_dict: return a ``UNet3DConditionOutput`` (else a 1-tuple).

        Returns:
            ``.sample`` ``[B, C_out, F, H, W]``.
        """
        batch, _, num_frames, height, width = sample.shape
        up_factor = 2**self.num_upsamplers
        forward_upsample_size = height % up_factor != 0 or width % up_factor != 0

        # 1. time embedding (+ motion magnitude) per clip, then per frame (+ camera)
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.float64 if isinstance(t, float) else torch.int64, device=sample.device)
        t = t.reshape(-1).to(sample.device).expand(batch)
        emb = self.time_embedding(self.time_proj(t).to(self.dtype))  # [B, D]
        if self.motion_embedding is not None:
            emb = emb + self.motion_embedding(motion_magnitude, batch, emb.dtype, emb.device)
        if self.text_pooled_embedding is not None:
            emb = emb + self.text_pooled_embedding(encoder_hidden_states, emb.dtype)
        emb = emb.repeat_interleave(num_frames, dim=0)  # [B*F, D]
        if self.camera_embedding is not None and camera_c2w is not None:
            if camera_c2w.shape[:2] != (batch, num_frames):
                raise ValueError(f"camera_c2w must be [B, F, 4, 4] = [{batch}, {num_frames}, 4, 4], got {tuple(camera_c2w.shape)}")
            emb = emb + self.camera_embedding(camera_c2w.to(emb.device), emb.dtype)
        if self.frame_time_embedding is not None:
            frame_time = self.frame_time_embedding(batch, num_frames, emb.dtype, emb.device)  # [B*F, D]
            reference = self.config.frame_time_motion_reference
            if reference:
                gate = motion_gate(motion_magnitude, batch, reference, emb.device).to(emb.dtype)  # [B]
                frame_time = gate_frame_time(frame_time.view(batch, num_frames, -1), gate,
                                             self.config.frame_time_motion_anchor).reshape(batch * num_frames, -1)
            emb = emb + frame_time

        # 2. cross-attention context (+ image tokens), per frame
        context = encoder_hidden_states
        if image_embeds is not None:
            if self.image_embeds_proj is not None:
                image_embeds = self.image_embeds_proj(image_embeds.to(self.dtype))
            context = torch.cat([context, image_embeds.to(context.dtype)], dim=1)
        context = context.repeat_interleave(num_frames, dim=0)

        # 3. input: [B, C', F, H, W] -> frames as batch [B*F, C', H, W]
        x = self._input_channels(sample, static_latents, image_latents)
        x = x.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, height, width)
        x = self.conv_in(x)
        x = self.transformer_in(x, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]

        # 4. down
        skips = [x]
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                x, res = self._block(
                    block, x, emb, encoder_hidden_states=context, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs
                )
            else:
                x, res = self._block(block, x, emb, num_frames=num_frames)
            skips.extend(res)

        # 5. mid
        if self.mid_block is not None:
            x = self._block(
                self.mid_block, x, emb, encoder_hidden_states=context, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs
            )

        # 6. up
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = tuple(skips[-n:]), skips[:-n]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                x = self._block(
                    block,
                    x,
                    res,
                    emb,
                    encoder_hidden_states=context,
                    upsample_size=upsample_size,
                    num_frames=num_frames,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                x = self._block(block, x, res, emb, upsample_size=upsample_size, num_frames=num_frames)

        # 7. output
        if self.conv_norm_out is not None:
            x = self.conv_act(self.conv_norm_out(x))
        x = self.conv_out(x)
        out = x.reshape(batch, num_frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        if not return_dict:
            return (out,)
        return UNet3DConditionOutput(sample=out)


def _channel_groups(config: Any) -> list:
    """The input-channel groups of ``conv_in`` in order (see :meth:`UNet4DConditionModel._input_channels`)."""
    groups = ["sample"]
    if config.get("static_conditioning", False):
        groups.append("static")
    if config.get("image_conditioning", False):
        groups.append("image")
    return groups


def _check_base_class(class_name: Optional[str], where: str) -> None:
    if class_name == "I2VGenXLUNet":
        raise UserError(
            f"{where} is an I2VGenXLUNet checkpoint, which from_base does not load: its image path "
            "(image_latents_proj_in, temporal image encoder, context/fps embeddings) has no counterpart here. "
            "Start from a ModelScope-T2V UNet3DConditionModel (ali-vilab/text-to-video-ms-1.7b) with "
            "image_conditioning=True, which adds I2VGen-XL-style image conditioning (first-view latents "
            "concatenated + image tokens in cross-attention)."
        )
    if class_name not in (None, "UNet3DConditionModel", "UNet4DConditionModel"):
        raise UserError(f"{where} holds a {class_name}; from_base expects a UNet3DConditionModel (ModelScope-T2V layout)")
