"""Image/text encoders behind one interface, built from a config entry (config key `encoders`).

Backends:
- `open_clip`: a built-in architecture name with a `pretrained` tag or weights file, an
  `hf-hub:` id that carries an open_clip config, a local folder with `open_clip_config.json`,
  or a local architecture JSON file (registered with `open_clip.add_model_config`) with optional
  weights; without weights the model is randomly initialised from the encoder's seed.
- `transformers`: a CLIP or SigLIP checkpoint in Transformers format (hub id or local folder),
  or an image-only model (DINOv2 / RAD-DINO, ViT, ...) with `text: false`.
- `torchxrayvision`: the supervised chest X-ray classifiers of torchxrayvision (DenseNet-121,
  ResNet-50), their penultimate features, with their own preprocessing.

Both give float32 numpy features (L2-normalised when configured) from batches of pixel tensors
made by the model's own preprocessing, and text features from strings when the model has a text
tower. torch, open_clip and transformers are imported only when an encoder is built.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


class EncoderError(ValueError):
    """An encoder that cannot be built or used as configured; the message names it."""


def configured_encoder(
    config: dict[str, Any], name: str, model: str | None = None
) -> dict[str, Any]:
    """The settings of encoder `name` from a validated config; `model` replaces its model path
    (a build_from encoder's model lives where rule make_demo_encoder wrote it)."""
    if name not in config["encoders"]:
        raise ValueError(
            f"encoder '{name}' is not in the config's encoders section "
            f"({', '.join(config['encoders']) or 'empty'})."
        )
    settings = dict(config["encoders"][name])
    if model:
        settings["model"] = model
    return settings


def pick_device(requested: str) -> str:
    """`auto` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    import torch

    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if requested == "auto":
        return next(device for device in ("cuda", "mps", "cpu") if available[device])
    if not available.get(requested, False):
        raise EncoderError(
            f"device '{requested}' was requested but is not available on this machine; "
            "use device: auto or cpu."
        )
    return requested


def effective_precision(precision: str, device: str) -> str:
    """bf16/fp16 autocast is a GPU speed-up; on CPU, fp16 autocast is slow or unsupported, so it
    falls back to fp32 (bf16 autocast works on CPU and is kept)."""
    if device == "cpu" and precision == "fp16":
        log.warning("precision fp16 is not used on CPU; encoding in fp32 instead")
        return "fp32"
    return precision


class TransformersPreprocess:
    """A Transformers image processor as a picklable per-image callable for DataLoader workers."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, image: Image.Image) -> Any:
        return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]


@dataclass
class Encoder(ABC):
    """A built encoder: the model, its preprocessing and the provenance written into caches."""

    name: str
    backend: str
    model_id: str
    weights: str
    model: Any
    preprocess: Any
    device: str
    precision: str
    normalize: bool
    has_text: bool
    logit_scale: float = math.nan
    logit_bias: float = math.nan
    input_shape: tuple[int, ...] = ()
    embed_dim: int = 0
    preprocessing: str = ""
    # Loads the tokenizer on first use: only prompt embedding needs one, and a tokenizer that
    # needs a missing package (SentencePiece, protobuf) must not stop image embedding.
    _load_tokenizer: Callable[[], Any] | None = field(default=None, repr=False)
    _tokenizer: Any = field(default=None, repr=False)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self._load_tokenizer is None:
                raise EncoderError(f"encoder '{self.name}' has no tokenizer.")
            try:
                self._tokenizer = self._load_tokenizer()
            except ImportError as error:
                raise EncoderError(
                    f"encoder '{self.name}' ({self.model_id}): its tokenizer needs the Python "
                    f"package '{missing_package(error)}', which is not installed here "
                    f"(pip install {missing_package(error)})."
                ) from error
            except (OSError, ValueError) as error:
                raise EncoderError(
                    f"encoder '{self.name}': the tokenizer of {self.model_id} could not be loaded "
                    f"({_one_line(str(error))})."
                ) from error
        return self._tokenizer

    # The backend forward passes, unnormalised and with autograd: encode_images/encode_texts
    # wrap them for caching; demo pretraining (probelab.demo.pretrain) trains through them.
    @abstractmethod
    def image_forward(self, pixels: Any) -> Any:
        """Pixels on the device -> (B, D) tensor."""

    @abstractmethod
    def text_forward(self, texts: list[str]) -> Any:
        """Strings -> (len(texts), D) tensor."""

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device, dtype=dtype)

    def _finish(self, features: Any) -> np.ndarray:
        import torch

        features = features.float()
        if self.normalize:
            features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy()

    def encode_images(self, pixels: Any) -> np.ndarray:
        """(B, C, H, W) preprocessed pixels -> (B, D) float32 features."""
        import torch

        with torch.inference_mode(), self._autocast():
            return self._finish(self.image_forward(pixels.to(self.device, non_blocking=True)))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (len(texts), D) float32 features; refused for an encoder without text
        tower."""
        import torch

        if not self.has_text:
            raise EncoderError(
                f"encoder '{self.name}' has no text tower "
                f"(config encoders.{self.name}.text is false), "
                "so it cannot embed prompts for prompt-fusion or zero-shot models."
            )
        with torch.inference_mode(), self._autocast():
            return self._finish(self.text_forward(texts))

    def provenance(self) -> dict[str, Any]:
        """The attributes a cache built with this encoder records (docs/architecture.md)."""
        return {
            "encoder": self.name,
            "backend": self.backend,
            "model_id": self.model_id,
            "weights": self.weights,
            "image_size": "x".join(str(s) for s in self.input_shape[1:]),
            "preprocessing": self.preprocessing,
            "normalize": self.normalize,
            "embedding_dim": self.embed_dim,
        }

    def _probe_shapes(self) -> None:
        # The model's own preprocessing and forward pass say what the input and output sizes are.
        import torch

        self.input_shape = tuple(self.preprocess(Image.new("L", (32, 32))).shape)
        with torch.inference_mode(), self._autocast():
            features = self.image_forward(torch.zeros((1, *self.input_shape), device=self.device))
        self.embed_dim = int(features.shape[-1])


class OpenClipEncoder(Encoder):
    def image_forward(self, pixels: Any) -> Any:
        return self.model.encode_image(pixels)

    def text_forward(self, texts: list[str]) -> Any:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


# Transformers model types whose text tower was trained (big_vision) on ids padded to the full
# context with no attention mask and pools the last position: a mask would change what that
# position sees, so the embedding would not be the published model's.
UNMASKED_FULL_CONTEXT_TEXT = frozenset({"siglip", "siglip2"})


class TransformersEncoder(Encoder):
    def image_forward(self, pixels: Any) -> Any:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def text_forward(self, texts: list[str]) -> Any:
        config = self.model.config
        unmasked = config.model_type in UNMASKED_FULL_CONTEXT_TEXT
        tokens = self.tokenizer(
            texts,
            # CLIP pads to the longest in the batch and takes the mask, as HF CLIP is used
            padding="max_length" if unmasked else True,
            truncation=True,
            max_length=config.text_config.max_position_embeddings,
            return_tensors="pt",
        )
        # Transformers 5's SigLIP tokenizer returns a mask too; the model must not get it
        inputs = {"input_ids": tokens["input_ids"]} if unmasked else dict(tokens)
        return _pooled(
            self.model.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()})
        )


class ImageOnlyEncoder(Encoder):
    """An encoder without a text tower (config `text: false`, which encode_texts enforces)."""

    def text_forward(self, texts: list[str]) -> Any:
        raise EncoderError(f"encoder '{self.name}' ({self.model_id}) has no text tower.")


class TransformersImageEncoder(ImageOnlyEncoder):
    """An image-only Transformers model (DINOv2 and RAD-DINO, ViT, ...): the pooled output,
    which for DINOv2 is the layer-normalised [CLS] token that RAD-DINO's authors use as the
    image embedding; a model without a pooler gives the mean of its last hidden states."""

    def image_forward(self, pixels: Any) -> Any:
        output = self.model(pixel_values=pixels)
        pooled = getattr(output, "pooler_output", None)
        return pooled if pooled is not None else output.last_hidden_state.mean(dim=1)


class XrvPreprocess:
    """torchxrayvision's own preprocessing, as a picklable per-image callable: one gray channel
    scaled to [-1024, 1024], centre-cropped square and resized to the model's resolution."""

    def __init__(self, resolution: int):
        self.resolution = resolution

    def __call__(self, image: Image.Image) -> Any:
        import torch
        import torchxrayvision as xrv

        gray = np.asarray(image.convert("L"), dtype=np.float32)
        scaled = xrv.datasets.normalize(gray, 255)[None]
        square = xrv.datasets.XRayCenterCrop()(scaled)
        resized = xrv.datasets.XRayResizer(self.resolution)(square)
        return torch.from_numpy(np.ascontiguousarray(resized, dtype=np.float32))


class XrvEncoder(ImageOnlyEncoder):
    """A torchxrayvision classifier's penultimate features (`features2`: the pooled DenseNet or
    ResNet features the authors use for transfer)."""

    def image_forward(self, pixels: Any) -> Any:
        return self.model.features2(pixels)


def _build_torchxrayvision(name: str, settings: dict[str, Any], device: str) -> XrvEncoder:
    """`model` is a torchxrayvision weights name (densenet121-res224-all, ...), or densenet121 /
    resnet50 for the architecture with random weights from the seed; `pretrained` is the folder
    holding downloaded weights (torchxrayvision's cache_dir; null = its default)."""
    import torch

    try:
        import torchxrayvision as xrv
    except ImportError as error:
        raise EncoderError(
            f"encoder '{name}': backend torchxrayvision needs the Python package "
            "'torchxrayvision', which is not installed here (pip install torchxrayvision)."
        ) from error
    model_ref, cache_dir = settings["model"], settings.get("pretrained")
    torch.manual_seed(settings["seed"])
    random = {"densenet121": xrv.models.DenseNet, "resnet50": xrv.models.ResNet}
    if model_ref in random:
        model, weights, resolution = (
            random[model_ref](),
            f"random init (seed {settings['seed']})",
            224,
        )
    elif model_ref in xrv.models.model_urls:
        try:
            model = xrv.models.get_model(model_ref, cache_dir=cache_dir)
        except Exception as error:  # torchxrayvision raises bare Exceptions and download errors
            raise EncoderError(
                f"encoder '{name}': torchxrayvision could not load weights '{model_ref}' "
                f"from {cache_dir or 'its cache'} ({_one_line(str(error))})."
            ) from error
        weights = model_ref
        resolution = int(xrv.models.model_urls[model_ref].get("input_resolution", 224))
    else:
        raise EncoderError(
            f"encoder '{name}': '{model_ref}' is not a torchxrayvision weights name "
            f"({', '.join(sorted(xrv.models.model_urls))}) nor densenet121 / resnet50."
        )
    model.to(device).eval()
    return XrvEncoder(
        name=name,
        backend="torchxrayvision",
        model_id=model_ref,
        weights=weights,
        model=model,
        preprocess=XrvPreprocess(resolution),
        device=device,
        precision=effective_precision(settings["precision"], device),
        normalize=settings["normalize"],
        has_text=False,
        preprocessing=f"torchxrayvision: gray, [-1024, 1024], centre crop, resize {resolution}",
    )


def _pooled(output: Any) -> Any:
    # Transformers 5 returns a model output whose pooler_output holds the projected features;
    # Transformers 4 returned the tensor itself.
    return output.pooler_output if hasattr(output, "pooler_output") else output


# Optional packages that tokenizers and towers import only when a checkpoint needs them.
OPTIONAL_PACKAGES = ("sentencepiece", "protobuf", "tiktoken", "timm", "torchxrayvision")


def missing_package(error: ImportError) -> str:
    """The package an ImportError is about: Transformers names it in the message only."""
    text = str(error).lower()
    named = [package for package in OPTIONAL_PACKAGES if package in text]
    return named[0] if named else (error.name or "unknown").split(".")[0]


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Written by make_demo_encoder into a model folder it pretrained (probelab.demo.encoder).
PRETRAINING_FILE = "pretraining.json"


def built_weights(settings: dict[str, Any]) -> str:
    """The provenance of a build_from encoder's weights: how make_demo_encoder made them, and the
    content digest of the folder, so that a cache (or a partial run resumed) is tied to these
    very weights, not only to the recipe that names the cache."""
    from probelab.fingerprint import content_digest

    folder = Path(settings["model"])
    record = folder / PRETRAINING_FILE
    if record.is_file():
        done = json.loads(record.read_text())
        how = (
            f"pretrained ({done['loss']} loss, {done['n_images']} training images, "
            f"seed {settings['seed']})"
        )
    else:
        how = f"random init (seed {settings['seed']})"
    return f"{how} from {settings['build_from']}, folder digest {content_digest(folder)}"


def _architecture_tokenizer(architecture: dict[str, Any]) -> Callable[[], Any]:
    """The tokenizer an architecture file's text tower asks for. open_clip.get_tokenizer would
    go by the registered name, and a file whose name contains "siglip" would send it to the hub
    for a SentencePiece model: the file's own text_cfg decides instead."""
    text_cfg = architecture.get("text_cfg", {})
    context = text_cfg.get("context_length", 77)
    kwargs = text_cfg.get("tokenizer_kwargs", {})

    def load() -> Any:
        from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

        if text_cfg.get("hf_tokenizer_name"):
            return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=context, **kwargs)
        return SimpleTokenizer(context_length=context, **kwargs)

    return load


def _build_open_clip(name: str, settings: dict[str, Any], device: str) -> OpenClipEncoder:
    import open_clip
    import torch

    model_ref, pretrained = settings["model"], settings.get("pretrained")
    if model_ref.endswith(".json"):
        path = Path(model_ref)
        if not path.is_file():
            raise EncoderError(f"encoder '{name}': architecture file {model_ref} does not exist.")
        architecture = json.loads(path.read_text())
        missing = [
            key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in architecture
        ]
        if missing:
            raise EncoderError(
                f"encoder '{name}': architecture file {model_ref} lacks the key '{missing[0]}'."
            )
        open_clip.add_model_config(path)  # registered under the file's stem
        arch = path.stem
        load_tokenizer = _architecture_tokenizer(architecture)
    elif Path(model_ref).is_dir():
        arch = f"local-dir:{model_ref}"
    else:
        arch = model_ref
    if not model_ref.endswith(".json"):
        load_tokenizer = partial(open_clip.get_tokenizer, arch)
    torch.manual_seed(settings["seed"])  # the random init of models without weights
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, device=device
        )
    except ImportError as error:
        raise EncoderError(
            f"encoder '{name}': open_clip needs the Python package '{missing_package(error)}' "
            f"to build '{model_ref}', which is not installed here."
        ) from error
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        raise EncoderError(
            f"encoder '{name}': open_clip could not build '{model_ref}' ({_one_line(str(error))})."
        ) from error
    model.eval()
    loaded = pretrained or model_ref.startswith("hf-hub:") or arch.startswith("local-dir:")
    logit_bias = getattr(model, "logit_bias", None)
    weights = str(pretrained or model_ref) if loaded else f"random init (seed {settings['seed']})"
    return OpenClipEncoder(
        name=name,
        backend="open_clip",
        model_id=model_ref,
        weights=built_weights(settings) if settings.get("build_from") else weights,
        model=model,
        preprocess=preprocess,
        device=device,
        precision=effective_precision(settings["precision"], device),
        normalize=settings["normalize"],
        has_text=settings["text"],
        logit_scale=float(model.logit_scale.exp().item()),
        logit_bias=float(logit_bias.item()) if logit_bias is not None else math.nan,
        preprocessing=_one_line(repr(preprocess)),
        _load_tokenizer=load_tokenizer if settings["text"] else None,
    )


def _build_transformers(name: str, settings: dict[str, Any], device: str) -> TransformersEncoder:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model_ref, remote = settings["model"], settings["trust_remote_code"]
    if settings.get("pretrained"):
        raise EncoderError(
            f"encoder '{name}': pretrained is for open_clip only; "
            "a Transformers checkpoint carries its "
            "weights in its folder or hub repository (set pretrained: null)."
        )
    try:
        model = AutoModel.from_pretrained(model_ref, trust_remote_code=remote)
        processor = AutoImageProcessor.from_pretrained(model_ref, trust_remote_code=remote)
    except ImportError as error:
        raise EncoderError(
            f"encoder '{name}': Transformers needs the Python package "
            f"'{missing_package(error)}' to load '{model_ref}', which is not installed here."
        ) from error
    except (OSError, ValueError) as error:
        raise EncoderError(
            f"encoder '{name}': Transformers could not load '{model_ref}' "
            f"({_one_line(str(error))})."
        ) from error
    contrastive = hasattr(model, "get_image_features")
    if settings["text"] and not hasattr(model, "get_text_features"):
        raise EncoderError(
            f"encoder '{name}': {model_ref} is a {type(model).__name__}, an image-only model; "
            f"set encoders.{name}.text to false (the models that read prompts are then skipped)."
        )
    model.to(device).eval()
    scale, bias = getattr(model, "logit_scale", None), getattr(model, "logit_bias", None)
    kind = TransformersEncoder if contrastive else TransformersImageEncoder
    return kind(
        name=name,
        backend="transformers",
        model_id=model_ref,
        weights=built_weights(settings) if settings.get("build_from") else model_ref,
        model=model,
        preprocess=TransformersPreprocess(processor),
        device=device,
        precision=effective_precision(settings["precision"], device),
        normalize=settings["normalize"],
        has_text=settings["text"],
        logit_scale=float(scale.exp().item()) if scale is not None else math.nan,
        logit_bias=float(bias.item()) if bias is not None else math.nan,
        preprocessing=json.dumps(processor.to_dict(), sort_keys=True, default=str),
        _load_tokenizer=partial(AutoTokenizer.from_pretrained, model_ref, trust_remote_code=remote)
        if settings["text"]
        else None,
    )


def build_encoder(name: str, settings: dict[str, Any]) -> Encoder:
    """Build the encoder `name` from its validated config entry (see schemas/embed.schema.yaml)."""
    device = pick_device(settings["device"])
    builders = {
        "open_clip": _build_open_clip,
        "transformers": _build_transformers,
        "torchxrayvision": _build_torchxrayvision,
    }
    encoder = builders[settings["backend"]](name, settings, device)
    encoder._probe_shapes()
    log.info(
        "encoder %s: %s %s (%s), input %s, dim %d, %s on %s",
        name,
        encoder.backend,
        encoder.model_id,
        encoder.weights,
        encoder.input_shape,
        encoder.embed_dim,
        encoder.precision,
        device,
    )
    return encoder
